"""Reproduce the paper's comparison: train noisy and plain runs, prune, tabulate, plot.

  python -m experiments.reproduce --preset quick            # README main job
  python -m experiments.reproduce --preset mnist_fcn        # a paper setting
  python -m experiments.reproduce --list                    # every preset

For each experiment of the preset: trains every (arm, width, seed) run that
has no finished record yet (runs sharing a compiled program are batched),
analyses each run once (``analysis.json`` beside its record), then writes to
``OUT`` (default ``results/<preset>``):

* ``runs.csv``: one row per run (config, status, steps, accuracies, pruning);
* ``table.md``: mean ± std over seeds, shaped like the paper's tables;
* ``pruning_curves.png``: test accuracy vs fraction of columns pruned;
* ``column_norms.png``: column-norm survival functions on log–log axes.

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
  add_compute_dtype_flag,
  add_distributed_flags,
  add_run_flags,
  check_or_exit,
  check_run_flags,
  check_unique_seeds,
  command,
  init_distributed,
  load_data_or_exit,
  parse_shard,
  prepare_out_dir,
  require_experiment_extras,
  usage_error,
)
from experiments.presets import get_experiments, listing
from htsgd_jax.config import check_fits


def parser() -> argparse.ArgumentParser:
  """The command line; builds without JAX, so ``--help`` answers at once."""
  parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument("--preset", default="quick", help="preset name (see --list)")
  parser.add_argument("--list", action="store_true", help="list presets and exit")
  parser.add_argument("--out", default=None, help="output directory (default results/<preset>)")
  parser.add_argument("--seeds", type=int, nargs="+", default=None, help="override the seeds")
  parser.add_argument("--data-dir", default=None, help="TFDS data directory (CIFAR presets)")
  parser.add_argument("--download", action="store_true", help="let TFDS download (needs a network)")
  add_compute_dtype_flag(parser)
  add_run_flags(parser, "retrain every run of the preset, replacing its files")
  add_distributed_flags(parser)
  return parser


@command
def main(argv=None) -> int:
  args = parser().parse_args(argv)
  if args.list:
    print(listing())
    return 0
  check_run_flags(args)
  require_experiment_extras()
  # What the work needs (JAX among it), imported once the command line parsed.
  from experiments import analysis, pipeline, report

  shard = parse_shard(args.shard)
  init_distributed(args)
  try:
    experiments = get_experiments(args.preset)
  except ValueError as err:
    usage_error(str(err))
  check_unique_seeds(args.seeds)
  # Everything is checked and loaded before the first program compiles.
  plan = []
  for exp in experiments:
    if args.seeds:
      exp = dataclasses.replace(exp, seeds=tuple(args.seeds))
    exp = exp.with_compute_dtype(args.compute_dtype)
    cfg = exp.noisy
    dataset = load_data_or_exit(
      dataclasses.replace(
        cfg, data_dir=args.data_dir or cfg.data_dir, download=args.download or cfg.download
      )
    )
    check_or_exit(check_fits, cfg, dataset)
    plan.append((exp, dataset))
  default_out = args.preset.replace(":", "_")
  if args.compute_dtype not in (None, "float32"):
    default_out += f"_{args.compute_dtype}"
  out = prepare_out_dir(args.out or f"results/{default_out}")
  pipeline.claim_out_dir(out, "reproduce", args.preset)
  stop_signal = None
  for exp, dataset in plan:
    if args.report_only or stop_signal:
      break
    try:
      stop_signal = pipeline.train_missing(
        exp.runs(),
        dataset,
        out / exp.name,
        exp.name,
        not args.no_progress,
        args.force,
        args.checkpoint_every_s,
        shard,
      )
    except KeyboardInterrupt:  # a second Ctrl-C: the last periodic checkpoint remains
      stop_signal = "SIGINT"
  if not pipeline.reports_due(args.preset, shard, args.report_only):
    return pipeline.exit_code(stop_signal)
  rows = [
    row
    for exp, dataset in plan
    for row in analysis.analyse(exp.runs(), dataset, out / exp.name, exp.name, exp.prune_fraction)
  ]
  return report.report(rows, out, stop_signal)


if __name__ == "__main__":
  sys.exit(main())
