"""The comparison's reports: compare.md (mean ± std per method, paired tests) and pareto.png."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from experiments.files import save_figure
from experiments.methods import METHODS, strength_label
from experiments.report import mean_std


def paired_p_value(a, b) -> float:
  """Two-sided paired t-test p-value of ``a`` vs ``b``; NaN when undefined (no differences).

  Example:
    >>> round(paired_p_value([1.0, 2.0, 3.0, 4.0], [2.0, 3.5, 4.0, 6.0]), 4)
    0.0105
  """
  from scipy import stats

  d = np.asarray(a, float) - np.asarray(b, float)
  if d.size < 2:
    return float("nan")
  if np.all(d == d[0]):  # no spread: the t statistic is 0/0 or ±inf
    return float("nan") if d[0] == 0 else 0.0
  return float(stats.ttest_rel(a, b).pvalue)


def compare_table(rows: list[dict], delta: float) -> str:
  """Mean ± std per method; p-values of a paired t-test of parameters kept vs plain SGD."""
  by_method = defaultdict(list)
  for r in rows:
    by_method[r["method"]].append(r)
  plain = {r["seed"]: r for r in by_method.get("plain", [])}
  full = rows[0]["full_parameters"]
  lines = [
    f"Smallest network within {delta:g} point(s) of plain SGD's test accuracy (same seed);"
    f" full network: {full:,} parameters, {rows[0]['full_flops']:,} FLOPs per example,"
    f" {np.median([r['full_latency_b1_ms'] for r in rows]):.3f} ms at batch 1 and"
    f" {np.median([r['full_latency_b1000_ms'] for r in rows]):.2f} ms at batch 1000.\n",
    "| method | strength | seeds | test acc. | reached target | units kept (%) |"
    " parameters kept (%) | p vs plain | pruned test acc. | FLOPs kept (%) |"
    " latency b1 (ms) | latency b1000 (ms) | units kept (%), within Δ of itself |",
    "|" + "---|" * 13,
  ]
  for method in [m for m in METHODS if m in by_method]:
    rs = sorted(by_method[method], key=lambda r: r["seed"])
    kept = [100 * r["parameters_kept"] for r in rs]
    paired = [100 * plain[r["seed"]]["parameters_kept"] for r in rs if r["seed"] in plain]
    p = paired_p_value(kept, paired) if method != "plain" and len(paired) == len(kept) else None
    lines.append(
      f"| {method} | {strength_label(method, rs[0]['strength'])} | {len(rs)}"
      f" | {mean_std([r['test_accuracy'] for r in rs])}"
      f" | {sum(r['reached_target'] for r in rs)}/{len(rs)}"
      f" | {mean_std([100 * r['units_kept'] for r in rs], '{:.1f}')}"
      f" | {mean_std(kept, '{:.1f}')} (median {np.median(kept):.1f})"
      f" | {'—' if p is None or not np.isfinite(p) else f'{p:.2g}'}"
      f" | {mean_std([r['pruned_test_accuracy'] for r in rs])}"
      f" | {mean_std([100 * r['compact_flops'] / r['full_flops'] for r in rs], '{:.1f}')}"
      f" | {mean_std([r['compact_latency_b1_ms'] for r in rs], '{:.3f}')}"
      f" | {mean_std([r['compact_latency_b1000_ms'] for r in rs], '{:.2f}')}"
      f" | {mean_std([100 * r['own_units_kept'] for r in rs], '{:.1f}')} |"
    )
  lines.append(
    "\nA run whose unpruned network misses the target counts at full size. Latency: median of"
    " interleaved timings of the compact and the full network (jit, this machine)."
  )
  return "\n".join(lines) + "\n"


def pareto_plot(rows: list[dict], curves: list[dict], reference: float, delta: float, path):
  """Test accuracy vs parameters kept: each method's mean curve, each run's smallest network.

  ``curves`` holds one dict per run: method, reached, parameters and
  test_accuracy (arrays over the search grid).
  """
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  colors = dict(
    plain="tab:blue",
    gaussian="tab:gray",
    type1="tab:orange",
    type2="tab:red",
    type3="tab:purple",
    group_lasso="tab:green",
  )
  fig, ax = plt.subplots(figsize=(7.5, 4.8))
  missed_label = "unpruned network misses the target"
  for method in METHODS:
    cs = [c for c in curves if c["method"] == method]
    if not cs:
      continue
    params = np.mean([c["parameters"] for c in cs], axis=0)
    acc = np.mean([c["test_accuracy"] for c in cs], axis=0)
    some_units = np.min([c["hidden_units"] for c in cs], axis=0) > 0  # no point without units
    ax.plot(params[some_units], acc[some_units], "-", color=colors[method], alpha=0.6)
    pts = [r for r in rows if r["method"] == method and r["reached_target"]]
    ax.scatter(
      [r["compact_parameters"] for r in pts],
      [r["pruned_test_accuracy"] for r in pts],
      color=colors[method],
      edgecolor="black",
      zorder=3,
      label=f"{method} ({len(pts)}/{len(cs)} reach the target)",
    )
    missed = [c for c in cs if not c["reached"]]
    if missed:
      ax.scatter(
        [c["parameters"][0] for c in missed],
        [c["test_accuracy"][0] for c in missed],
        facecolor="none",
        edgecolor=colors[method],
        marker="s",
        zorder=3,
        label=missed_label,
      )
      missed_label = None
  ax.axhline(reference - delta, color="black", ls="--", lw=1, label=f"plain SGD − {delta:g} point")
  ax.set(
    xscale="log",
    xlabel=f"parameters kept (compact network; full: {rows[0]['full_parameters']:,})",
    ylabel="test accuracy (%)",
    title="dots: each run's smallest network within the target; lines: mean over seeds",
    ylim=(max(0, reference - 15), min(100, reference + 2)),
  )
  ax.title.set_fontsize(10)
  ax.grid(alpha=0.3, which="both")
  ax.legend(fontsize=7, loc="lower right")
  fig.tight_layout()
  save_figure(fig, path)
