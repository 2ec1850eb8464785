"""Reports of analysed runs: runs.csv, table.md (mean ± std over seeds) and plots.

Rows come from :func:`experiments.analysis.analyse`; diverged runs are
counted per arm and left out of every mean.
"""

from __future__ import annotations

import pathlib
from collections import defaultdict

import numpy as np

from experiments.analysis import CSV_FIELDS, has_results
from experiments.files import save_figure, write_csv, write_text
from experiments.pipeline import stopped


def mean_std(values, fmt: str = "{:.2f}") -> str:
  """``mean ± std`` of the finite values (None and NaN skipped), ``—`` if there are none.

  Example:
    >>> mean_std([1.0, 3.0, None]), mean_std([2.0], "{:.1f}"), mean_std([])
    ('2.00 ± 1.00', '2.0', '—')
  """
  v = np.asarray([x for x in values if x is not None and np.isfinite(float(x))], float)
  if v.size == 0:
    return "—"
  return f"{fmt.format(v.mean())} ± {fmt.format(v.std())}" if v.size > 1 else fmt.format(v.mean())


COLLAPSE_POINTS = 5.0


def collapsed(row: dict) -> bool:
  """A run collapses under the pruning rule when pruning costs it > 5 points of test accuracy.

  Example:
    >>> collapsed(dict(test_accuracy=97.0, pruned_test_accuracy=70.0))
    True
  """
  return row["test_accuracy"] - row["pruned_test_accuracy"] > COLLAPSE_POINTS


def _median_max(values) -> str:
  v = np.asarray([x for x in values if x is not None and np.isfinite(float(x))], float)
  return f"{np.median(v):.3f}, {v.max():.3f}" if v.size else "—"


def markdown_table(rows: list[dict]) -> str:
  """Mean ± std over seeds per experiment, width and arm.

  *collapsed* counts runs that pruning costs more than 5 points of test
  accuracy; *top column* is the largest column's share of the first hidden
  layer's energy (the median over seeds, and the maximum): a share near 1
  explains a collapse (the rule then keeps that one column). Diverged runs
  are counted in *runs* and left out of every other column.
  """
  head = (
    "| experiment | width | arm | runs | train acc. | test acc. |"
    " pruned test acc. | fraction pruned (%) | collapsed | top column (median, max) |"
    " rel. error | α̂ Hill (col. norms) |"
  )
  lines = [head, "|" + "---|" * (head.count("|") - 1)]
  groups = defaultdict(list)
  for r in rows:
    groups[(r["experiment"], r["width"], r["arm"])].append(r)
  for (exp, width, arm), all_runs in sorted(
    groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] != "plain")
  ):
    rs = [r for r in all_runs if has_results(r)]
    counts = [
      f"{sum(r['status'] == status for r in all_runs)} {status}"
      for status in ("converged", "diverged")
      if any(r["status"] == status for r in all_runs)
    ]
    runs = f"{len(all_runs)} ({', '.join(counts)})" if counts else str(len(all_runs))
    lines.append(
      f"| {exp} | {width} | {arm} | {runs}"
      f" | {mean_std(r['train_accuracy'] for r in rs)}"
      f" | {mean_std(r['test_accuracy'] for r in rs)}"
      f" | {mean_std(r['pruned_test_accuracy'] for r in rs)}"
      f" | {mean_std(100 * r['fraction_pruned'] for r in rs)}"
      f" | {sum(map(collapsed, rs)) if rs else '—'}"
      f" | {_median_max([r.get('top_column_energy') for r in rs])}"
      f" | {mean_std(r['relative_error'] for r in rs)}"
      f" | {mean_std(r['hill_column_norms'] for r in rs)} |"
    )
  return "\n".join(lines) + "\n"


def plot(rows: list[dict], out: pathlib.Path) -> list[pathlib.Path]:
  """Pruning curves and column-norm survival functions, one panel per experiment."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  rows = [r for r in rows if has_results(r)]
  if not rows:
    return []
  arms = sorted({r["arm"] for r in rows}, key=lambda a: (a != "plain", a))
  palette = ["tab:red", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink"]
  colors = {
    a: "tab:blue" if a == "plain" else palette[i % len(palette)]
    for i, a in enumerate(a for a in arms if a != "plain")
  }
  colors.setdefault("plain", "tab:blue")
  panels = sorted({(r["experiment"], r["width"]) for r in rows})
  paths = []
  fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
  for ax, (exp, width) in zip(axes[0], panels):
    for arm in arms:
      curves = np.asarray(
        [
          [c[1] for c in r["curve"]]
          for r in rows
          if (r["experiment"], r["width"], r["arm"]) == (exp, width, arm)
        ]
      )
      if curves.size == 0:
        continue
      x = [
        c[0] for c in next(r for r in rows if r["arm"] == arm and r["experiment"] == exp)["curve"]
      ]
      curves = curves.reshape(len(curves), len(x))
      ax.plot(x, curves.mean(0), "o-", color=colors[arm], label=f"{arm} ({len(curves)} seeds)")
      ax.fill_between(x, curves.min(0), curves.max(0), color=colors[arm], alpha=0.2)
    ax.set(
      title=f"{exp} (n={width})",
      xlabel="fraction of columns pruned (each hidden layer)",
      ylabel="test accuracy (%)",
    )
    ax.grid(alpha=0.3)
    ax.legend()
  fig.tight_layout()
  paths.append(save_figure(fig, out / "pruning_curves.png"))

  fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
  for ax, (exp, width) in zip(axes[0], panels):
    for arm in arms:
      norms = np.concatenate(
        [
          np.asarray(r["column_norms"], float)
          for r in rows
          if (r["experiment"], r["width"], r["arm"]) == (exp, width, arm)
        ]
        or [np.array([])]
      )
      norms = np.sort(norms[norms > 0])
      if norms.size == 0:
        continue
      survival = 1.0 - np.arange(norms.size) / norms.size
      ax.loglog(norms, survival, color=colors[arm], label=arm)
    ax.set(
      title=f"{exp} (n={width})", xlabel="column norm (first hidden layer)", ylabel="P(norm > x)"
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend()
  fig.tight_layout()
  paths.append(save_figure(fig, out / "column_norms.png"))
  return paths


def report(rows: list[dict], out: pathlib.Path, stop_signal: str | None = None) -> int:
  """Writes and prints the reports of the finished runs; returns the exit code.

  128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM) if a signal
  stopped the training, else 0.
  """
  if rows:
    table, files = write_outputs(rows, out)
    print(f"\n{table}\nwritten to {out}/ ({', '.join(files)})")
  else:
    print("no finished runs yet.")
  return stopped(stop_signal)


def write_outputs(rows: list[dict], out: pathlib.Path) -> tuple[str, list[str]]:
  """Writes runs.csv, table.md and the plots; returns the table and the files' names."""
  out.mkdir(parents=True, exist_ok=True)
  write_csv(out / "runs.csv", rows, CSV_FIELDS)
  table = markdown_table(rows)
  write_text(out / "table.md", table)
  return table, ["runs.csv", "table.md", *(p.name for p in plot(rows, out))]
