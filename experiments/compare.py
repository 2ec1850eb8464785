"""Which training gives the smallest network at the accuracy you need?

  python -m experiments.compare --preset ecg5000_fcn:quick
  python -m experiments.compare --preset mnist_fcn:quick
  python -m experiments.compare --preset ecg5000_fcn:widths --fine-tune-steps 300

The methods a practitioner would try, all with the preset's data, width,
learning rate, batch size, step budget and seeds: plain SGD; Gaussian
noise (α = 2, the preset's noise type); heavy-tailed noise of types 1, 2
and 3 (the preset's α) and type 2 at α = 1.5; group lasso on the hidden units' columns
(:func:`htsgd_jax.group_lasso`, a proximal step after SGD).

1. **Tuning, on a validation split.** Each method's strength (σ for the
   noises: the preset's ``sigma_factors``, by default ``methods.SIGMA_FACTORS``,
   × its σ; λ for group lasso: the preset's ``group_lasso_grid``) is chosen
   with ``--validation`` (0.2) of the training set held out: every grid point trains on the rest
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
3. **Beyond size** (:mod:`experiments.sensitivity`). Every full network and
   its smallest version are attacked with PGD (L∞, 10 steps, margin loss,
   :func:`htsgd_jax.robust_accuracies`) at the preset's ε grid (``--eps``)
   on ``--robust-examples`` test examples; their generalisation gap
   (train − test accuracy), and per hidden layer the largest singular value
   and the top unit's share of the squared norm.

**Fine-tuning** (``--fine-tune-steps N``, off by default). Every smallest
network then trains N steps of plain SGD (the preset's learning rate and
batch size, the same minibatches for every method), its removed units held
at zero (:func:`htsgd_jax.fine_tune`); its test accuracy is reported beside
the pruned network's, at the same size.

**Budget.** By default (``--budget converge``) every run stops at the
preset's train-accuracy target, as the paper trains, or at the preset's
``compare_steps`` cap; ``--budget fixed`` trains every run for the whole cap.

**Across widths.** ``--widths 250 500 1000`` (or a ``NAME:widths`` preset)
runs the whole protocol (tuning included) at each width, in ``OUT/n<width>/``, then writes
``widths.md`` (units and parameters kept at equal accuracy per width and
method, paired t-tests against plain SGD and group lasso), ``widths.csv``
and ``widths.png`` (both against width, one line per method). A width may
also run alone (``--widths 2000``, elsewhere); ``experiments.gather_widths``
then writes these reports across the widths' folders.

Reports in ``OUT`` (default ``results/compare_<preset>``):

* ``compare.md``: mean ± std over seeds per method, with a paired t-test of
  parameters kept against plain SGD (the same seeds: same initialisation and
  data order), also printed;
* ``compare.csv`` (one row per run) and ``curves.csv`` (test accuracy vs
  units removed and parameters kept, every run);
* ``pareto.png``: test accuracy vs parameters kept, every method;
* ``robustness.md`` (robust accuracy per ε with paired t-tests against plain
  SGD, gap, spectra; full and smallest networks) and ``robustness.png``
  (accuracy against ε);
* ``tuning.md``: the validation scores of every strength.

Training is resumable like ``experiments.reproduce`` (runs are records under
``OUT/tuning`` and ``OUT/runs``; SIGINT/SIGTERM checkpoint the program in
flight; the same command resumes).
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
from experiments.out_dir import prepare_out_dir
from experiments.presets import COMPARE_MODELS, get_experiments
from experiments.settings import CompareConfig
from htsgd_jax.config import check_fits


def parser() -> argparse.ArgumentParser:
  """The command line, generated from :class:`CompareConfig`; builds without JAX."""
  parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  add_config_flags(parser, CompareConfig)
  add_run_flags(parser, "retrain every run, replacing its files")
  return parser


@command
def main(argv=None) -> int:
  args = parser().parse_args(argv)
  settings = config_from_args(CompareConfig, args)
  options = run_options(args)
  require_experiment_extras()
  try:
    experiments = get_experiments(settings.preset, "compare")
  except ValueError as err:
    usage_error(str(err))
  if len(experiments) != 1 or experiments[0].noisy.model not in COMPARE_MODELS:
    usage_error(
      f"compare needs one FCN or VGG preset (e.g. ecg5000_fcn:quick); {settings.preset!r} is not."
    )
  exp = experiments[0].with_compute_dtype(settings.compute_dtype)
  # The preset's defaults, checked as the flags are (seeds, widths, ε).
  settings = config_from_args(
    CompareConfig,
    args,
    seeds=settings.seeds or exp.seeds,
    eps=settings.eps or exp.robust_eps,
    widths=settings.widths or exp.widths or (exp.noisy.width,),
  )
  across = bool(args.widths or exp.widths)  # OUT/n<width>/ each, then widths.md
  # What the work needs (JAX among it), imported once the command line is known to be good.
  from experiments import compare_protocol, compare_report, pipeline

  # Everything is checked and loaded before the first program compiles.
  plans = [
    compare_protocol.Plan(exp.at_width(w) if across else exp, settings) for w in settings.widths
  ]
  first_configs = [plan.tuning_runs()[0].config for plan in plans]  # one per width
  validation_data = load_data_or_exit(first_configs[0])
  dataset = load_data_or_exit(dataclasses.replace(first_configs[0], validation=0.0))
  for cfg in first_configs:
    check_or_exit(check_fits, cfg, validation_data)
  default_out = f"results/compare_{exp.name}" + ("_fixed" if settings.budget == "fixed" else "")
  out = prepare_out_dir(settings.out or default_out)
  pipeline.claim_out_dir(out, "compare", settings.preset)

  by_width = {}
  for plan in plans:
    width_out = out / f"n{plan.exp.noisy.width}" if across else out
    rows, stop = compare_protocol.run(plan, options, validation_data, dataset, width_out)
    if stop:
      return pipeline.stopped(stop)
    by_width[plan.exp.noisy.width] = rows
  if across:
    rows = [r for w in sorted(by_width) for r in by_width[w]]
    table = compare_report.write_widths(rows, settings.delta, out)
    print(f"\n{table}\nwritten to {out}/ (widths.md, widths.csv, widths.png; n<width>/ each)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
