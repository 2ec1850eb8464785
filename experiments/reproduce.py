"""Reproduce the paper's comparison: train noisy and plain runs, prune, tabulate, plot.

  python -m experiments.reproduce --preset quick            # README main job
  python -m experiments.reproduce --preset mnist_fcn        # a paper setting
  python -m experiments.reproduce --list                    # every preset

For each experiment of the preset: trains every (arm, width, seed) run that
has no finished record yet (runs sharing a compiled program are batched),
analyses each run once (``analysis.json`` beside its record), then writes to
``OUT`` (default ``results/<preset>``, plus ``_<dtype>`` under another
``--compute-dtype`` than the preset's):

* ``runs.csv``: one row per run (config, status, steps, accuracies, pruning);
* ``table.md``: mean ± std over seeds, shaped like the paper's tables;
* ``pruning_curves.png``: test accuracy vs fraction of columns pruned;
* ``column_norms.png``: column-norm survival functions on log–log axes.

``--arms`` and ``--seeds`` choose what this command trains, so that one job
can train one run (``--arms noisy --seeds 3``) and finish on its own; the
reports cover every finished run in OUT of the preset's grid and of that
choice. A finished run is its sealed ``record.json`` and ``analysis.json``:
once analysed, its ``params.npz`` may go (it is never committed), and the
run is still reported and never retrained; ``--report-only`` rebuilds the
reports from those small files alone.

Rerunning reuses finished runs and analyses. Ctrl-C or SIGTERM checkpoints
the program in flight (also every ``--checkpoint-every-s`` seconds); the same
command resumes it bit for bit. Every run directory is named by its config's
fingerprint, so a directory never holds runs of another config.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from experiments.cli import (
  add_config_flags,
  add_run_flags,
  check_or_exit,
  command,
  config_from_args,
  load_data_or_exit,
  require_experiment_extras,
  run_options,
  usage_error,
)
from experiments.hosts import add_distributed_flags, init_distributed, parse_shard
from experiments.out_dir import prepare_out_dir
from experiments.presets import get_experiments, listing
from experiments.settings import ReproduceConfig
from htsgd_jax.config import check_fits


def parser() -> argparse.ArgumentParser:
  """The command line, generated from :class:`ReproduceConfig`; builds without JAX."""
  parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  add_config_flags(parser, ReproduceConfig)
  add_run_flags(parser, "retrain every run of the preset, replacing its files")
  add_distributed_flags(parser)
  return parser


@command
def main(argv=None) -> int:
  args = parser().parse_args(argv)
  settings = config_from_args(ReproduceConfig, args)
  if settings.list:
    print(listing())
    return 0
  options = run_options(args)
  require_experiment_extras()
  # What the work needs (JAX among it), imported once the command line parsed.
  from experiments import analysis, pipeline, report

  shard = parse_shard(args.shard)
  init_distributed(args, "experiments.reproduce", argv)
  try:
    experiments = get_experiments(settings.preset)
  except ValueError as err:
    usage_error(str(err))
  plan = checked_plan(experiments, settings)  # before the first program compiles
  out = prepare_out_dir(settings.out or default_out(settings, experiments))
  pipeline.claim_out_dir(out, "reproduce", settings.preset)
  in_memory, stop_signal = {}, None
  if not args.report_only:
    in_memory, stop_signal = train(plan, settings, out, options, shard)
  if not pipeline.reports_due(settings.preset, shard, args.report_only):
    return pipeline.exit_code(stop_signal)
  rows = [
    row
    for exp, dataset in plan
    for row in analysis.analyse(
      reported_runs(exp, settings.seeds),
      dataset,
      out / exp.name,
      exp.name,
      exp.prune_fraction,
      in_memory,
    )
  ]
  per_run = frozenset(exp.name for exp, _ in plan if exp.run_table)
  return report.report(rows, out, stop_signal, per_run)


def checked_plan(experiments: list, settings: ReproduceConfig) -> list:
  """The preset's experiments at the chosen dtype, each with its dataset, loaded and checked.

  Returns ``[(experiment, dataset)]``.
  """
  plan = []
  for exp in experiments:
    exp = exp.with_compute_dtype(settings.compute_dtype)
    cfg = exp.noisy
    dataset = load_data_or_exit(
      dataclasses.replace(
        cfg, data_dir=settings.data_dir or cfg.data_dir, download=settings.download or cfg.download
      )
    )
    check_or_exit(check_fits, cfg, dataset)
    plan.append((exp, dataset))
  return plan


def default_out(settings: ReproduceConfig, experiments: list) -> str:
  """``results/<preset>``, plus ``_<dtype>`` under another compute dtype than the preset's.

  Example:
    >>> (exp,) = get_experiments("mnist_fcn")
    >>> default_out(ReproduceConfig(preset="mnist_fcn", compute_dtype="float32"), [exp])
    'results/mnist_fcn_float32'
  """
  name = settings.preset.replace(":", "_")
  if settings.compute_dtype and any(
    settings.compute_dtype != e.noisy.compute_dtype for e in experiments
  ):
    name += f"_{settings.compute_dtype}"
  return f"results/{name}"


def train(plan: list, settings: ReproduceConfig, out, options, shard) -> tuple[dict, str | None]:
  """Trains each experiment's chosen arms and seeds that are missing, in order.

  Returns the runs this process finished, by config, and the name of the
  signal that stopped the training, if one did (the later experiments wait).
  """
  from experiments import pipeline

  in_memory = {}
  for exp, dataset in plan:
    try:
      chosen = dataclasses.replace(exp, seeds=tuple(settings.seeds or exp.seeds))
      trained = pipeline.train_missing(
        chosen.runs(tuple(settings.arms)), dataset, out / exp.name, exp.name, options, shard
      )
    except KeyboardInterrupt:  # a second Ctrl-C: the last periodic checkpoint remains
      return in_memory, "SIGINT"
    in_memory.update(trained.finished)
    if trained.stop_signal:
      return in_memory, trained.stop_signal
  return in_memory, None


def reported_runs(exp, seeds) -> list:
  """The runs the reports cover: the preset's grid and the chosen seeds, each once.

  Example:
    >>> from experiments.presets import get_experiments
    >>> (exp,) = get_experiments("mnist_fcn:quick")
    >>> sorted({spec.seed for spec in reported_runs(exp, [9, 1])})
    [1, 2, 3, 4, 5, 9]
  """
  extra = tuple(s for s in seeds or () if s not in exp.seeds)
  return dataclasses.replace(exp, seeds=exp.seeds + extra).runs()


if __name__ == "__main__":
  sys.exit(main())
