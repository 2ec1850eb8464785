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
from htsgd_jax.config import CONV_MODELS


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


def steps_to_target(rows: list[dict]) -> str:
  """Steps to the target accuracy: mean ± std of the runs that reached it, then those that did not.

  Example:
    >>> runs = [dict(status="converged", steps=s, max_steps=6000) for s in (2600, 2800)]
    >>> steps_to_target(runs)
    '2700 ± 100'
    >>> steps_to_target(runs[:1] + [dict(status="max_steps", steps=6000, max_steps=6000)])
    '2600; 1 not reached by 6000'
    >>> steps_to_target([dict(status="max_steps", steps=6000, max_steps=6000)])
    'not reached by 6000 (1)'
  """
  reached = [r["steps"] for r in rows if r["status"] == "converged"]
  capped = [r for r in rows if r["status"] == "max_steps"]
  text = mean_std(reached, "{:.0f}") if reached else ""
  if capped:
    cap = "/".join(sorted({str(r["max_steps"]) for r in capped}))
    text = f"{text}; {len(capped)} not reached by {cap}" if text else f"not reached by {cap}"
    text += "" if reached else f" ({len(capped)})"
  return text or "—"


def unit_names(rows: list[dict]) -> tuple[str, str]:
  """What a column is in these rows' networks, and what their width counts.

  A convolutional network's columns are its filters, and its width is the
  first convolution's channels; an FCN's are hidden units, ``n``.

  Example:
    >>> unit_names([{"model": "vgg11"}]), unit_names([{"model": "fcn"}])
    (('filter', 'width'), ('column', 'n'))
  """
  models = {r.get("model", "fcn") for r in rows}
  if models <= set(CONV_MODELS):
    return "filter", "width"
  if models & set(CONV_MODELS):
    return "column", "width"
  return "column", "n"


def markdown_table(rows: list[dict]) -> str:
  """Mean ± std over seeds per experiment, width and arm.

  *steps to target* averages the runs that reached the target accuracy and
  counts those that stopped at the step cap instead. *collapsed* counts
  runs that pruning costs more than 5 points of test accuracy; *top column*
  (*top filter* for CNNs) is the largest column's share of the first hidden
  layer's energy (the median over seeds, and the maximum): a share near 1
  explains a collapse (the rule then keeps that one column). Diverged runs
  are counted in *runs* and left out of every other column.
  """
  unit, _ = unit_names(rows)
  head = (
    "| experiment | width | arm | runs | steps to target | train acc. | test acc. |"
    f" pruned test acc. | fraction pruned (%) | collapsed | top {unit} (median, max) |"
    f" rel. error | α̂ Hill ({unit[:3]}. norms) |"
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
      f"| {exp} | {width} | {arm} | {runs} | {steps_to_target(all_runs)}"
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


def run_table(rows: list[dict]) -> str:
  """One line per run: how far it trained, how long it took, and what pruning did to it.

  For the few long runs of a paper-scale setting, where each run is a result.
  """
  unit, _ = unit_names(rows)
  head = (
    "| experiment | arm | seed | status | steps | train acc. | test acc. |"
    f" fraction pruned (%) | pruned test acc. | top {unit} | wall time (min) |"
  )
  lines = [head, "|" + "---|" * (head.count("|") - 1)]

  def num(value, fmt="{:.2f}"):
    return "—" if value is None else fmt.format(value)

  for r in sorted(rows, key=lambda r: (r["experiment"], r["arm"] != "plain", r["arm"], r["seed"])):
    steps = str(r["steps"])
    if r["status"] == "converged":
      steps += f" (reached {r['target_accuracy']:g}%)"
    elif r["status"] == "max_steps":
      steps += " (cap; target not reached)" if r.get("target_accuracy") is not None else " (cap)"
    pruned = r.get("fraction_pruned")
    lines.append(
      f"| {r['experiment']} | {r['arm']} | {r['seed']} | {r['status']} | {steps}"
      f" | {num(r['train_accuracy'])} | {num(r['test_accuracy'])}"
      f" | {num(None if pruned is None else 100 * pruned)}"
      f" | {num(r.get('pruned_test_accuracy'))} | {num(r.get('top_column_energy'), '{:.3f}')}"
      f" | {num(None if r['wall_time_s'] is None else r['wall_time_s'] / 60, '{:.1f}')} |"
    )
  return "\n".join(lines) + "\n"


def arm_colors(arms) -> dict[str, str]:
  """Plain SGD in blue, every other arm its own colour, the same in every plot.

  Example:
    >>> arm_colors(["noisy", "plain"])
    {'noisy': 'tab:red', 'plain': 'tab:blue'}
  """
  palette = ["tab:red", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink"]
  others = sorted(a for a in set(arms) if a != "plain")
  colors = {a: palette[i % len(palette)] for i, a in enumerate(others)}
  return dict(colors, plain="tab:blue") if "plain" in arms else colors


def plot_training(rows: list[dict], out: pathlib.Path) -> pathlib.Path | None:
  """Train accuracy against step, one line per run, from the records' histories."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  rows = [r for r in rows if r.get("history", {}).get("step")]
  if not rows:
    return None
  colors = arm_colors({r["arm"] for r in rows})
  panels = sorted({(r["experiment"], r["width"]) for r in rows})
  fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
  for ax, (exp, width) in zip(axes[0], panels):
    runs = [r for r in rows if (r["experiment"], r["width"]) == (exp, width)]
    size = unit_names(runs)[1]
    labelled = set()
    for r in sorted(runs, key=lambda r: (r["arm"], r["seed"])):
      h = r["history"]
      count = sum(q["arm"] == r["arm"] for q in runs)
      label = None if r["arm"] in labelled else f"{r['arm']} ({count} run{'s' * (count > 1)})"
      labelled.add(r["arm"])
      ax.plot(h["step"], h["train_accuracy"], color=colors[r["arm"]], lw=1, alpha=0.8, label=label)
    for t in sorted({r["target_accuracy"] for r in runs if r.get("target_accuracy") is not None}):
      ax.axhline(t, color="k", ls="--", lw=0.8, label=f"target {t:g}%")
    # The step-0 evaluation (chance) would squash the curves; every later one is shown.
    later = [
      a
      for r in runs
      for s, a in zip(*(r["history"][k] for k in ("step", "train_accuracy")))
      if s > 0 and a is not None
    ]
    every = sorted({r["eval_every"] for r in runs})
    ax.set(
      title=f"{exp} ({size}={width})",
      xlabel="SGD step",
      ylabel=f"train accuracy (%), every {'/'.join(map(str, every))} steps",
      xlim=(0, max(s for r in runs for s in r["history"]["step"])),
      ylim=(max(0.0, min(later, default=0.0) - 2), 100),
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
  fig.tight_layout()
  return save_figure(fig, out / "training_curves.png")


def plot(rows: list[dict], out: pathlib.Path) -> list[pathlib.Path]:
  """Pruning curves and column-norm survival functions, one panel per experiment."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  rows = [r for r in rows if has_results(r)]
  if not rows:
    return []
  arms = sorted({r["arm"] for r in rows}, key=lambda a: (a != "plain", a))
  colors = arm_colors(arms)
  panels = sorted({(r["experiment"], r["width"]) for r in rows})
  unit, size = unit_names(rows)
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
      ax.plot(
        x,
        curves.mean(0),
        "o-",
        color=colors[arm],
        label=f"{arm} ({len(curves)} seed{'s' * (len(curves) > 1)})",
      )
      ax.fill_between(x, curves.min(0), curves.max(0), color=colors[arm], alpha=0.2)
    ax.set(
      title=f"{exp} ({size}={width})",
      xlabel=f"fraction of {unit}s pruned (each hidden layer)",
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
      title=f"{exp} ({size}={width})",
      xlabel=f"{unit} norm (first hidden layer)",
      ylabel="P(norm > x)",
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend()
  fig.tight_layout()
  paths.append(save_figure(fig, out / "column_norms.png"))
  return paths


def report(
  rows: list[dict],
  out: pathlib.Path,
  stop_signal: str | None = None,
  per_run: frozenset[str] = frozenset(),
) -> int:
  """Writes and prints the reports of the finished runs; returns the exit code.

  ``per_run`` names the experiments whose runs table.md also lists one by
  one (:func:`run_table`). 128 + the signal's number (130 for Ctrl-C, 143
  for SIGTERM) if a signal stopped the training, else 0.
  """
  if rows:
    table, files = write_outputs(rows, out, per_run)
    print(f"\n{table}\nwritten to {out}/ ({', '.join(files)})")
    absent = [r for r in rows if has_results(r) and r["params"] == "absent"]
    if absent:
      print(
        f"{len(absent)} of {len(rows)} runs reported from their sealed record and analysis"
        f" alone (no params.npz): {', '.join(pathlib.Path(r['run_dir']).name for r in absent)}"
      )
  else:
    print("no finished runs yet.")
  return stopped(stop_signal)


def write_outputs(
  rows: list[dict], out: pathlib.Path, per_run: frozenset[str] = frozenset()
) -> tuple[str, list[str]]:
  """Writes runs.csv, table.md and the plots; returns the table and the files' names."""
  out.mkdir(parents=True, exist_ok=True)
  write_csv(out / "runs.csv", rows, CSV_FIELDS)
  table = markdown_table(rows)
  listed = [r for r in rows if r["experiment"] in per_run]
  if listed:
    table += "\nEvery run:\n\n" + run_table(listed)
  write_text(out / "table.md", table)
  plots = [*plot(rows, out), plot_training(rows, out)]
  return table, ["runs.csv", "table.md", *(p.name for p in plots if p)]
