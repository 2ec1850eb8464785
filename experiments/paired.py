"""Paired differences between two runs of the same preset (another compute dtype, say).

  python -m experiments.reproduce --preset quick --out results/q_f32
  python -m experiments.reproduce --preset quick --compute-dtype bfloat16 --out results/q_bf16
  python -m experiments.paired results/q_f32/runs.csv results/q_bf16/runs.csv

Runs are paired by experiment (its dtype suffix dropped), arm and seed: the
same initialisation and data order. For each arm: the mean ± std of the
differences (second − first), the largest one, and a paired t-test's p-value;
and the collapse count of each side (:func:`experiments.report.collapsed`).
"""

from __future__ import annotations

import argparse
import csv
import sys

import numpy as np

from experiments.cli import command, usage_error
from experiments.presets import COMPUTE_SUFFIXES

FIELDS = (  # column, label, scale, decimals
  ("test_accuracy", "test acc. (points)", 1.0, 2),
  ("fraction_pruned", "fraction pruned (points)", 100.0, 2),
  ("pruned_test_accuracy", "pruned test acc. (points)", 1.0, 2),
  ("top_column_energy", "top-column share", 1.0, 3),
)


def read_runs(path: str) -> dict[tuple[str, str, str], dict]:
  """Finished runs of a ``runs.csv`` keyed by (experiment without dtype suffix, arm, seed)."""
  try:
    with open(path, newline="") as f:
      rows = list(csv.DictReader(f))
  except OSError as err:
    usage_error(f"cannot read {path} ({err.strerror or err}).")
  out = {}
  for r in rows:
    if r.get("test_accuracy", "") == "":
      continue  # diverged: no result to pair
    experiment = r["experiment"]
    for suffix in COMPUTE_SUFFIXES:
      experiment = experiment.removesuffix(suffix)
    out[(experiment, r["arm"], r["seed"])] = r
  return out


def paired_table(first: dict, second: dict) -> str:
  """One markdown row per (experiment, arm): paired differences, second − first."""
  from scipy import stats

  keys = sorted(set(first) & set(second))
  if not keys:
    usage_error("the two files share no (experiment, arm, seed): not runs of the same preset.")
  head = "| experiment | arm | pairs | " + " | ".join(f"Δ {f[1]}" for f in FIELDS)
  lines = [head + " | collapsed (first → second) |", "|---" * (4 + len(FIELDS)) + "|"]
  groups: dict[tuple[str, str], list] = {}
  for k in keys:
    groups.setdefault(k[:2], []).append(k)
  for (experiment, arm), ks in sorted(groups.items()):
    cells = []
    for field, _, scale, decimals in FIELDS:
      a = np.array([float(first[k][field]) for k in ks]) * scale
      b = np.array([float(second[k][field]) for k in ks]) * scale
      d = b - a
      if len(ks) > 1 and d.std() > 0:
        p = stats.ttest_rel(b, a).pvalue
      else:  # no spread: the t statistic is 0/0 (no difference) or infinite
        p = 1.0 if np.all(d == 0) else 0.0
      mean, std, largest = (
        round(float(v), decimals) + 0.0 for v in (d.mean(), d.std(), np.abs(d).max())
      )
      cells.append(
        f"{mean:+.{decimals}f} ± {std:.{decimals}f} (max {largest:.{decimals}f}; p {p:.2g})"
      )

    def collapsed(rows):  # the reports' rule, on the CSV's text cells
      from experiments import report  # imports JAX: not before --help

      fields = ("test_accuracy", "pruned_test_accuracy")
      return sum(report.collapsed({f: float(r[f]) for f in fields}) for r in rows)

    counts = f"{collapsed([first[k] for k in ks])} → {collapsed([second[k] for k in ks])}"
    lines.append(f"| {experiment} | {arm} | {len(ks)} | {' | '.join(cells)} | {counts} |")
  return "\n".join(lines) + "\n"


@command
def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument("first", help="runs.csv of the reference (e.g. float32)")
  parser.add_argument("second", help="runs.csv of the other (e.g. bfloat16)")
  args = parser.parse_args(argv)
  print(paired_table(read_runs(args.first), read_runs(args.second)), end="")
  return 0


if __name__ == "__main__":
  sys.exit(main())
