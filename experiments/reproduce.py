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

Rerunning reuses finished runs and analyses. Ctrl-C keeps every finished run.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys

from experiments import pipeline
from experiments.cli import load_data_or_exit
from experiments.presets import GROUPS, NAMES, get_experiments


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--preset", default="quick", help="preset name (see --list)")
  parser.add_argument("--list", action="store_true", help="list presets and exit")
  parser.add_argument("--out", default=None, help="output directory (default results/<preset>)")
  parser.add_argument("--seeds", type=int, nargs="+", default=None, help="override the seeds")
  parser.add_argument("--data-dir", default=None, help="TFDS data directory (CIFAR presets)")
  parser.add_argument("--download", action="store_true", help="let TFDS download (needs a network)")
  parser.add_argument("--no-progress", action="store_true", help="no progress bars")
  args = parser.parse_args(argv)
  if args.list:
    for name in (*GROUPS, *NAMES):
      print(name)
    return 0
  try:
    experiments = get_experiments(args.preset)
  except ValueError as err:
    raise SystemExit(f"error: {err}") from None
  out = pathlib.Path(args.out or f"results/{args.preset.replace(':', '_')}")
  rows, complete = [], True
  for exp in experiments:
    if args.seeds:
      exp = dataclasses.replace(exp, seeds=tuple(args.seeds))
    cfg = exp.noisy
    dataset = load_data_or_exit(dataclasses.replace(
        cfg, data_dir=args.data_dir or cfg.data_dir, download=args.download or cfg.download))
    runs, run_out = exp.runs(), out / exp.name
    try:
      complete = pipeline.train_missing(runs, dataset, run_out, exp.name,
                                        not args.no_progress) and complete
    except KeyboardInterrupt:
      complete = False
    rows.extend(pipeline.analyse(runs, dataset, run_out, exp.name, exp.prune_fraction))
    if not complete:
      break
  return pipeline.report(rows, out, complete)


if __name__ == "__main__":
  sys.exit(main())
