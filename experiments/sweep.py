"""Batched sweeps: widths × seeds × α × σ × noise types, resumable.

  python -m experiments.sweep --dataset ecg5000 --widths 100 500 2000 \\
      --seeds 1 2 3 4 5 --alphas 1.75 --sigmas 0 0.5 --noise-types 2 \\
      --lr 0.01 --batch-size 100 --target-accuracy 99 --eval-every 10 \\
      --out results/sweep_ecg5000

  python -m experiments.sweep --preset ecg5000_fcn:quick --widths 250 500 1000 2000

Every seed, α and σ of one width and noise type trains in one compiled
program (``vmap`` over runs, sharded over all local devices; plain runs join
as σ = 0), so the example above is 3 programs. Each finished run is a record
in ``OUT/<run>-<fingerprint>/`` (the format of ``experiments.train``; the
fingerprint hashes the whole config, so the same grid at another lr trains
beside it). Rerunning skips finished runs; SIGINT/SIGTERM checkpoint the
program in flight, which the same command resumes bit for bit (a SIGKILL
loses at most ``--checkpoint-every-s`` seconds). Every value is checked
before anything compiles. Reports as ``experiments.reproduce``: runs.csv,
table.md and plots, of this command's runs only.

Choosing σ (the first question of every new user)::

  python -m experiments.sweep --preset ecg5000_fcn:quick --sigmas 0.05 0.15 0.5 1.5 --tune sigma

``--tune sigma`` holds out ``--validation`` (default 0.2) of the training set,
trains the grid on the rest (plain SGD, σ = 0, joins as the reference), and
picks per width, noise type and α the σ whose networks lose the most hidden
units while validation accuracy stays within ``--delta`` points of plain
SGD's (:mod:`experiments.tuning`); it writes ``tuning.md`` and ``tuning.json``
instead of the compressibility reports. The test set is not looked at.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys

from experiments import methods
from experiments.cli import (
  add_config_flags,
  add_run_flags,
  check_or_exit,
  command,
  config_from_args,
  given_config_flags,
  load_data_or_exit,
  require_experiment_extras,
  run_options,
  usage_error,
)
from experiments.hosts import add_distributed_flags, init_distributed, parse_shard
from experiments.out_dir import prepare_out_dir
from experiments.presets import get_experiments
from experiments.runs import RunSpec
from experiments.settings import SweepConfig
from htsgd_jax.config import TrainConfig, check_fits

GRID = ("width", "seed", "alpha", "sigma", "noise_type")


def arm_label(cfg: TrainConfig) -> str:
  return f"type{cfg.noise_type} α={cfg.alpha:g} σ={cfg.sigma:g}" if cfg.noisy else "plain"


def grid_runs(base: TrainConfig, widths, seeds, alphas, sigmas, noise_types) -> list[RunSpec]:
  """Every combination, labelled by :func:`arm_label`; plain runs are deduplicated.

  Example:
    >>> runs = grid_runs(TrainConfig(), [10, 20], [1, 2], [1.75], [0.0, 0.5], [1, 2])
    >>> len(runs)  # 2 widths × 2 seeds × (plain + 2 noisy arms)
    12
  """
  runs, seen = [], set()
  for width, seed, alpha, sigma, noise_type in itertools.product(
    widths, seeds, alphas, sigmas, noise_types
  ):
    noisy = sigma > 0 and noise_type != 0
    cfg = dataclasses.replace(
      base,
      width=width,
      seed=seed,
      alpha=alpha if noisy else base.alpha,
      sigma=sigma if noisy else 0.0,
      noise_type=noise_type if noisy else 0,
    )
    if cfg in seen:
      continue
    seen.add(cfg)
    name = (
      f"n{width}_t{noise_type}_a{alpha:g}_s{sigma:g}_seed{seed}"
      if noisy
      else f"n{width}_plain_seed{seed}"
    )
    runs.append(RunSpec(name, arm_label(cfg), cfg, strength=cfg.sigma))
  return runs


def check_grid(grid: dict[str, list]) -> None:
  """Refuses grid values that would silently train something else (σ = -1 as 'plain').

  Example:
    >>> check_grid(dict(widths=[10], seeds=[1], alphas=[1.5], sigmas=[-1.0], noise_types=[2]))
    Traceback (most recent call last):
    ...
    experiments.cli.UsageError: error: --sigmas must be finite and >= 0; got -1.0.
  """
  from htsgd_jax import stable
  from htsgd_jax.noise_types import NOISE_TYPES, described

  for width in grid["widths"]:
    if width < 1:
      usage_error(f"--widths must be >= 1; got {width}.")
  for alpha in grid["alphas"]:
    check_or_exit(stable.check_alpha, alpha, name="--alphas")
  for sigma in grid["sigmas"]:
    check_or_exit(stable.check_scale, sigma, name="--sigmas")
  for noise_type in grid["noise_types"]:
    if noise_type not in (0, *NOISE_TYPES):
      usage_error(f"--noise-types must be {described('plain')}; got {noise_type}.")


def parser() -> argparse.ArgumentParser:
  """The command line, generated from :class:`SweepConfig` and the base run's
  :class:`TrainConfig`; builds without JAX."""
  parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  add_config_flags(parser, SweepConfig)
  add_run_flags(parser, "retrain every run of the grid, replacing its files")
  add_distributed_flags(parser)
  add_config_flags(parser, TrainConfig, skip=GRID)
  return parser


def base_and_grid(settings: SweepConfig, args, argv) -> tuple[TrainConfig, dict[str, list], str]:
  """The base run, the grid's values (given, or the preset's or base's), and the sweep's label.

  With ``--preset``, every config flag given on the command line applies to
  the preset's config (and so to each run's fingerprint).
  """
  if settings.preset:
    try:
      exp = get_experiments(settings.preset, "sweep")[0]
    except ValueError as err:
      usage_error(str(err))
    # The preset's config, with every config flag given on the command line applied to it
    # (part of each run's fingerprint, so such runs never mix with the preset's own).
    given = given_config_flags(parser, argv, TrainConfig)
    base = config_from_args(TrainConfig, argparse.Namespace(**{**exp.noisy.to_dict(), **given}))
    label = exp.name
    defaults = dict(
      widths=[base.width],
      seeds=list(exp.seeds),
      alphas=[base.alpha],
      sigmas=[0.0, base.sigma],
      noise_types=[base.noise_type],
    )
  else:
    base = config_from_args(TrainConfig, args)
    label = f"sweep_{base.dataset}"
    defaults = dict(
      widths=[base.width],
      seeds=[1, 2, 3, 4, 5],
      alphas=[base.alpha],
      sigmas=[0.0, base.sigma],
      noise_types=[base.noise_type or 1],
    )
  grid = {k: list(getattr(settings, k) or v) for k, v in defaults.items()}
  if settings.tune:
    base = dataclasses.replace(base, validation=base.validation or methods.VALIDATION)
    grid["sigmas"] = sorted({0.0, *grid["sigmas"]})  # plain SGD is the reference
    label = f"tune_{label}"
  return base, grid, label


@command
def main(argv=None) -> int:
  args = parser().parse_args(argv)
  settings = config_from_args(SweepConfig, args)
  # What the work needs (JAX among it), imported once the command line parsed.
  from experiments import analysis, pipeline, report, tuning
  from htsgd_jax import pruning

  options = run_options(args)
  require_experiment_extras()
  shard = parse_shard(args.shard)
  init_distributed(args, "experiments.sweep", argv)
  check_or_exit(pruning.check_fraction, settings.prune_fraction, "--prune-fraction")
  base, grid, label = base_and_grid(settings, args, argv)
  check_grid(grid)
  try:
    runs = grid_runs(
      base, grid["widths"], grid["seeds"], grid["alphas"], grid["sigmas"], grid["noise_types"]
    )
  except ValueError as err:
    usage_error(str(err))
  dataset = load_data_or_exit(base)
  check_or_exit(check_fits, base, dataset)
  out = prepare_out_dir(settings.out or f"results/{label}")
  pipeline.claim_out_dir(out, "sweep", label)
  stop_signal, in_memory = None, {}
  if not args.report_only:
    try:
      in_memory, stop_signal = pipeline.train_missing(runs, dataset, out, label, options, shard)
    except KeyboardInterrupt:  # a second Ctrl-C: the last periodic checkpoint remains
      stop_signal = "SIGINT"
  if not pipeline.reports_due(label, shard, args.report_only):
    return pipeline.exit_code(stop_signal)
  if settings.tune:
    return tuning.report(runs, dataset, out, settings.delta, stop_signal, in_memory)
  rows = analysis.analyse(runs, dataset, out, label, settings.prune_fraction, in_memory)
  return report.report(rows, out, stop_signal)


if __name__ == "__main__":
  sys.exit(main())
