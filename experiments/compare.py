"""Which training gives the smallest network at the accuracy you need?

  python -m experiments.compare --preset ecg5000_fcn:quick
  python -m experiments.compare --preset mnist_fcn:quick

The methods a practitioner would try, all with the preset's data, width,
learning rate, batch size, step budget and seeds: plain SGD; Gaussian
noise (α = 2, the preset's noise type); heavy-tailed noise of types 1, 2
and 3 (the preset's α); group lasso on the hidden units' columns
(:func:`htsgd_jax.group_lasso`, a proximal step after SGD).

1. **Tuning, on a validation split.** Each method's strength (σ for the
   noises, from ``SIGMA_FACTORS`` × the preset's σ; λ for group lasso, from
   the preset's ``group_lasso_grid``) is chosen with ``--validation`` (0.2)
   of the training set held out: every grid point trains on the rest
   (``--tuning-seeds``; σ and λ are traced values, so a noise type's whole
   grid is one compiled program), and the strength that lets the most hidden
   units go while validation accuracy stays within Δ of plain SGD's (same
   seed) wins; ties go to the weaker strength. The test set is not looked at.
2. **Evaluation, on the test set.** Each method at its strength trains on the
   whole training set for every seed (≥ 5). *The accuracy you need* is plain
   SGD's unpruned test accuracy, same seed, minus Δ (``--delta``, 1 point).
   A network's *smallest version* removes the most hidden units (smallest
   column norms first, the same number in every hidden layer) while test
   accuracy stays at or above that, found by :func:`htsgd_jax.search_prunable`
   to a single unit; a run whose unpruned network misses it counts at full
   size. The smallest version is then built for real
   (:func:`htsgd_jax.compact_dense`), checked to compute the masked network's
   logits, and timed at batch 1 and 1000 against the full network.

Reports in ``OUT`` (default ``results/compare_<preset>``):

* ``compare.md``: mean ± std over seeds per method, with a paired t-test of
  parameters kept against plain SGD (the same seeds: same initialisation and
  data order), also printed;
* ``compare.csv`` (one row per run) and ``curves.csv`` (test accuracy vs
  units removed and parameters kept, every run);
* ``pareto.png``: test accuracy vs parameters kept, every method;
* ``tuning.md``: the validation scores of every strength.

Training is resumable like ``experiments.reproduce`` (runs are records under
``OUT/tuning`` and ``OUT/runs``; SIGINT/SIGTERM checkpoint the program in
flight; the same command resumes).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from experiments import methods as methods_lib
from experiments.cli import (
  add_compute_dtype_flag,
  add_run_flags,
  check_or_exit,
  check_run_flags,
  check_unique_seeds,
  command,
  load_data_or_exit,
  prepare_out_dir,
  require_experiment_extras,
  usage_error,
)
from experiments.methods import METHODS, method_config, strength_grid
from experiments.presets import get_experiments
from htsgd_jax.config import check_fits


def parser() -> argparse.ArgumentParser:
  """The command line; builds without JAX, so ``--help`` answers at once."""
  parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument(
    "--preset", default="ecg5000_fcn:quick", help="a preset of experiments.reproduce (an FCN one)"
  )
  parser.add_argument(
    "--out", default=None, help="output directory (default results/compare_<preset>)"
  )
  parser.add_argument(
    "--seeds", type=int, nargs="+", default=None, help="evaluation seeds (default: the preset's)"
  )
  parser.add_argument(
    "--tuning-seeds",
    type=int,
    nargs="+",
    default=[101, 102],
    help="seeds of the tuning runs (default: %(default)s)",
  )
  parser.add_argument(
    "--methods",
    nargs="+",
    default=list(METHODS),
    choices=METHODS,
    help="methods to compare (plain SGD always runs)",
  )
  methods_lib.add_delta_flag(parser)
  parser.add_argument(
    "--validation",
    type=float,
    default=methods_lib.VALIDATION,
    help="fraction of the training set held out for tuning (default: %(default)s)",
  )
  parser.add_argument(
    "--timing-repeats",
    type=int,
    default=20,
    help="timed calls per latency figure (batch 1: 5x) (default: %(default)s)",
  )
  add_compute_dtype_flag(parser)
  add_run_flags(parser, "retrain every run, replacing its files")
  return parser


@command
def main(argv=None) -> int:
  args = parser().parse_args(argv)
  # What the work needs (JAX among it), imported once the command line parsed.
  import numpy as np

  from experiments import compare_report, pipeline, smallest, tuning
  from experiments.files import write_csv, write_text
  from htsgd_jax import records

  check_run_flags(args)
  require_experiment_extras()
  try:
    experiments = get_experiments(args.preset, "compare")
  except ValueError as err:
    usage_error(str(err))
  if len(experiments) != 1 or experiments[0].noisy.model != "fcn":
    usage_error(f"compare needs one FCN preset (e.g. ecg5000_fcn:quick); {args.preset!r} is not.")
  exp = experiments[0].with_compute_dtype(args.compute_dtype)
  seeds = tuple(args.seeds or exp.seeds)
  check_unique_seeds(seeds)
  check_unique_seeds(args.tuning_seeds)
  if len(seeds) < 2:
    usage_error("a paired test needs at least 2 seeds; the issue's standard is 5.")
  methods_lib.check_delta(args.delta)
  if not 0 < args.validation < 1:
    usage_error(f"--validation is a fraction in (0, 1); got {args.validation}.")
  methods = ["plain"] + [m for m in args.methods if m != "plain"]
  # Everything is checked and loaded before the first program compiles.
  tuning_runs = [
    (
      m,
      s,
      seed,
      dataclasses.replace(method_config(exp, m, s), seed=seed, validation=args.validation),
    )
    for m in methods
    for s in strength_grid(exp, m)
    for seed in args.tuning_seeds
  ]
  validation_data = load_data_or_exit(tuning_runs[0][3])
  dataset = load_data_or_exit(dataclasses.replace(tuning_runs[0][3], validation=0.0))
  check_or_exit(check_fits, tuning_runs[0][3], validation_data)
  out = prepare_out_dir(args.out or f"results/compare_{exp.name}")
  pipeline.claim_out_dir(out, "compare", args.preset)

  print(
    f"[{exp.name}] 1. tuning {len(methods) - 1} methods on a validation split"
    f" ({args.validation:g} of the training set)"
  )
  tuned, stop = tuning.train_and_load(tuning_runs, validation_data, out / "tuning", "tuning", args)
  if stop:
    return pipeline.stopped(stop)
  if len(tuned) < len(tuning_runs):
    usage_error("some tuning runs are unfinished; rerun the same command.")
  chosen, tuning_md = tuning.choose(tuned, validation_data, args.delta)
  write_text(out / "tuning.md", tuning_md)
  print(tuning_md)

  print(f"[{exp.name}] 2. every method at its strength, seeds {list(seeds)}, whole training set")
  final_runs = [
    (m, chosen[m], seed, dataclasses.replace(method_config(exp, m, chosen[m]), seed=seed))
    for m in methods
    for seed in seeds
  ]
  trained, stop = tuning.train_and_load(final_runs, dataset, out / "runs", "compare", args)
  if stop:
    return pipeline.stopped(stop)
  print(f"[{exp.name}] 3. searching each network's smallest version on the test set")
  rows, curves = smallest.evaluate_methods(trained, dataset, args.delta, args.timing_repeats)
  write_csv(out / "compare.csv", rows)
  write_csv(out / "curves.csv", [point for c in curves for point in c["points"]])
  compare_report.pareto_plot(
    rows,
    curves,
    float(np.mean([r["target_accuracy"] for r in rows])) + args.delta,  # plain SGD's
    args.delta,
    out / "pareto.png",
  )
  table = compare_report.compare_table(rows, args.delta)
  write_text(out / "compare.md", table)
  records.write_json(out / "chosen.json", dict(delta=args.delta, strengths=chosen))
  print(
    f"\n{table}\nwritten to {out}/ (compare.md, compare.csv, curves.csv, pareto.png, tuning.md)"
  )
  return 0


if __name__ == "__main__":
  sys.exit(main())
