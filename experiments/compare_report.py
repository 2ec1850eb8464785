"""The comparison's reports: compare.md (mean ± std per method, paired tests) and pareto.png."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from experiments.files import save_figure, write_csv, write_text
from experiments.methods import METHODS, strength_label
from experiments.report import mean_std

METHOD_COLORS = dict(
  plain="tab:blue",
  gaussian="tab:gray",
  type1="tab:orange",
  type2="tab:red",
  type3="tab:purple",
  group_lasso="tab:green",
  **{"type2_alpha1.5": "tab:brown"},
)


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
  tune_steps = rows[0].get("fine_tune_steps")
  lines = [
    f"Smallest network within {delta:g} point(s) of plain SGD's test accuracy (same seed);"
    f" full network: {full:,} parameters, {rows[0]['full_flops']:,} FLOPs per example,"
    f" {np.median([r['full_latency_b1_ms'] for r in rows]):.3f} ms at batch 1 and"
    f" {np.median([r['full_latency_b1000_ms'] for r in rows]):.2f} ms at batch 1000.\n",
    "| method | strength | seeds | test acc. | reached target | units kept (%) |"
    " parameters kept (%) | p vs plain | pruned test acc. | FLOPs kept (%) |"
    " latency b1 (ms) | latency b1000 (ms) | units kept (%), within Δ of itself |"
    + (
      f" after {tune_steps} fine-tune steps: reach target, params kept (%), test acc. |"
      if tune_steps
      else ""
    ),
    "|" + "---|" * (14 if tune_steps else 13),
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
      + (" {}; {}; {} |".format(*fine_tuned(rs)) if tune_steps else "")
    )
  lines.append(
    "\nA run whose unpruned network misses the target counts at full size. Latency: median of"
    " interleaved timings of the compact and the full network (jit, this machine)."
  )
  return "\n".join(lines) + "\n"


def fine_tuned(rows: list[dict]) -> tuple[str, str, str]:
  """After fine-tuning: runs at the target, parameters kept (%), test accuracy; mean ± std.

  Runs whose fine-tuning diverged are left out of the means and counted.
  """
  done = [r for r in rows if r["fine_tuned_test_accuracy"] is not None]
  diverged = len(rows) - len(done)
  reach = f"{sum(r['fine_tuned_reached_target'] for r in done)}/{len(rows)}" + (
    f" (diverged {diverged})" if diverged else ""
  )
  kept = mean_std([100 * r["fine_tuned_parameters_kept"] for r in done], "{:.1f}")
  return reach, kept, mean_std([r["fine_tuned_test_accuracy"] for r in done])


def pareto_plot(rows: list[dict], curves: list[dict], reference: float, delta: float, path):
  """Test accuracy vs parameters kept: each method's mean curve, each run's smallest network.

  ``curves`` holds one dict per run: method, reached, parameters and
  test_accuracy (arrays over the search grid).
  """
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(7.5, 4.8))
  missed_label = "unpruned network misses the target"
  for method in METHODS:
    cs = [c for c in curves if c["method"] == method]
    if not cs:
      continue
    params = np.mean([c["parameters"] for c in cs], axis=0)
    acc = np.mean([c["test_accuracy"] for c in cs], axis=0)
    some_units = np.min([c["hidden_units"] for c in cs], axis=0) > 0  # no point without units
    ax.plot(params[some_units], acc[some_units], "-", color=METHOD_COLORS[method], alpha=0.6)
    pts = [r for r in rows if r["method"] == method and r["reached_target"]]
    ax.scatter(
      [r["compact_parameters"] for r in pts],
      [r["pruned_test_accuracy"] for r in pts],
      color=METHOD_COLORS[method],
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
        edgecolor=METHOD_COLORS[method],
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


def robustness_table(rows: list[dict], eps: tuple[float, ...], examples: int, steps: int) -> str:
  """Per method and network (full, smallest within Δ): robust accuracy, gap and spectra.

  Each cell is mean ± std over seeds; robust accuracies carry the p-value of
  a paired t-test against plain SGD's same network (same seeds).
  """
  by_method = defaultdict(list)
  for r in rows:
    by_method[r["method"]].append(r)
  plain = {r["seed"]: r for r in by_method.get("plain", [])}
  layers = sorted(
    k.removeprefix("full_").removesuffix("_sigma_max")
    for k in rows[0]
    if k.startswith("full_") and k.endswith("_sigma_max")
  )
  eps_heads = "".join(f" robust acc. ε = {e:g} |" for e in eps)
  layer_heads = "".join(f" σ_max {layer} | top unit share {layer} |" for layer in layers)
  lines = [
    f"PGD ({steps} steps, L∞, margin loss) on {examples} test examples (a fixed random subset);"
    " ε in the standardised inputs' units. p: paired t-test against plain SGD's same network."
    " Gap: train − test accuracy.\n",
    f"| method | network | seeds | test acc. | gap |{eps_heads}{layer_heads}",
    "|" + "---|" * (5 + len(eps) + 2 * len(layers)),
  ]
  for method in [m for m in METHODS if m in by_method]:
    rs = sorted(by_method[method], key=lambda r: r["seed"])
    for network, test_key in (("full", "test_accuracy"), ("smallest", "pruned_test_accuracy")):
      cells = [
        mean_std([r[test_key] for r in rs]),
        mean_std([r[f"{network}_train_accuracy"] - r[test_key] for r in rs]),
      ]
      for e in eps:
        key = f"{network}_robust_{e:g}"
        values = [r[key] for r in rs]
        paired = [plain[r["seed"]][key] for r in rs if r["seed"] in plain]
        p = paired_p_value(values, paired) if method != "plain" and len(paired) == len(rs) else None
        cells.append(
          mean_std(values, "{:.1f}") + ("" if p is None or not np.isfinite(p) else f" (p {p:.2g})")
        )
      for layer in layers:
        cells.append(mean_std([r[f"{network}_{layer}_sigma_max"] for r in rs], "{:.2f}"))
        cells.append(mean_std([r[f"{network}_{layer}_top_share"] for r in rs], "{:.3f}"))
      lines.append(f"| {method} | {network} | {len(rs)} | {' | '.join(cells)} |")
  return "\n".join(lines) + "\n"


def robustness_plot(rows: list[dict], eps: tuple[float, ...], path) -> None:
  """Robust accuracy against ε, one line per method (mean, band: min to max over seeds).

  Left: the full networks; right: their smallest versions within Δ.
  """
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  grid = (0.0, *eps)
  fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
  for ax, network in zip(axes, ("full", "smallest")):
    for method in METHODS:
      rs = [r for r in rows if r["method"] == method]
      if not rs:
        continue
      acc = np.asarray([[r[f"{network}_robust_{e:g}"] for e in grid] for r in rs])
      ax.plot(grid, acc.mean(0), "o-", color=METHOD_COLORS[method], label=f"{method} ({len(rs)})")
      ax.fill_between(grid, acc.min(0), acc.max(0), color=METHOD_COLORS[method], alpha=0.15)
    title = "full networks" if network == "full" else "smallest networks within Δ"
    ax.set(title=title, xlabel="ε (L∞, standardised inputs)", ylim=(0, 100))
    ax.grid(alpha=0.3)
  axes[0].set_ylabel("accuracy under PGD (%)")
  axes[1].legend(fontsize=8)
  fig.tight_layout()
  save_figure(fig, path)


def widths_table(rows: list[dict], delta: float) -> str:
  """Per width and method: units and parameters kept at equal accuracy; paired tests.

  p-values are paired t-tests of parameters kept (same seeds) against plain
  SGD and against group lasso at the same width.
  """
  tune_steps = rows[0].get("fine_tune_steps")
  lines = [
    f"Smallest network within {delta:g} point(s) of plain SGD's test accuracy (same seed), per"
    " width: hidden units kept per layer and parameters kept (% of the full network),"
    " mean ± std over seeds. A run whose unpruned network misses the target counts at full"
    " size."
    + (
      f" Fine-tuned: that network after {tune_steps} steps of plain SGD, removed units held"
      " removed; its size counts the units it really has (group lasso zeroes units of a network"
      " that may count at full size), and it reaches the target if its accuracy does."
      if tune_steps
      else ""
    )
    + "\n",
    "| width | method | strength | seeds | reach target | units kept per layer |"
    " params kept (%) | p vs plain | p vs group lasso | pruned test acc. |"
    + (" fine-tuned: reach target | params kept (%) | test acc. |" if tune_steps else ""),
    "|" + "---|" * (13 if tune_steps else 10),
  ]
  for width in sorted({r["width"] for r in rows}):
    at_width = [r for r in rows if r["width"] == width]
    kept = defaultdict(dict)
    for r in at_width:
      kept[r["method"]][r["seed"]] = 100 * r["parameters_kept"]
    for method in [m for m in METHODS if m in kept]:
      rs = sorted((r for r in at_width if r["method"] == method), key=lambda r: r["seed"])
      ps = []
      for reference in ("plain", "group_lasso"):
        if method == reference or reference not in kept:
          ps.append("—")
          continue
        seeds = [r["seed"] for r in rs if r["seed"] in kept[reference]]
        p = paired_p_value([kept[method][s] for s in seeds], [kept[reference][s] for s in seeds])
        ps.append("—" if not np.isfinite(p) else f"{p:.2g}")
      lines.append(
        f"| {width} | {method} | {strength_label(method, rs[0]['strength'])} | {len(rs)}"
        f" | {sum(r['reached_target'] for r in rs)}/{len(rs)}"
        f" | {mean_std([r['units_kept'] * width for r in rs], '{:.1f}')}"
        f" | {mean_std([100 * r['parameters_kept'] for r in rs], '{:.1f}')}"
        f" | {ps[0]} | {ps[1]} | {mean_std([r['pruned_test_accuracy'] for r in rs])} |"
        + (" {} | {} | {} |".format(*fine_tuned(rs)) if tune_steps else "")
      )
  return "\n".join(lines) + "\n"


def widths_plot(rows: list[dict], delta: float, path) -> None:
  """Units kept per layer and parameters kept against width, one line per method.

  Lines are means over seeds; bands span the smallest to the largest seed.
  """
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from matplotlib.ticker import NullLocator

  widths = sorted({r["width"] for r in rows})
  fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
  for method in METHODS:
    per_width = [[r for r in rows if r["method"] == method and r["width"] == w] for w in widths]
    if not all(per_width):
      continue
    color = METHOD_COLORS[method]
    for ax, value in zip(
      axes, (lambda r: r["units_kept"] * r["width"], lambda r: 100 * r["parameters_kept"])
    ):
      values = [np.asarray([value(r) for r in rs]) for rs in per_width]
      ax.plot(widths, [v.mean() for v in values], "o-", color=color, label=method)
      ax.fill_between(
        widths, [v.min() for v in values], [v.max() for v in values], color=color, alpha=0.12
      )
  axes[0].plot(widths, widths, ":", color="black", lw=1, label="every unit")
  axes[0].set(xscale="log", yscale="log", ylabel="hidden units kept per layer")
  axes[1].set(xscale="log", ylabel="parameters kept (% of the full network)", ylim=(0, 100))
  for ax in axes:
    ax.set(xlabel="width n")
    # The widths themselves as ticks: log axes' default minor labels overlap here.
    ax.set_xticks(widths, [str(w) for w in widths])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.grid(alpha=0.3, which="both")
  axes[0].legend(fontsize=7)
  fig.suptitle(
    f"The smallest network within {delta:g} point(s) of plain SGD's test accuracy", fontsize=10
  )
  fig.tight_layout()
  save_figure(fig, path)


def write_widths(rows: list[dict], delta: float, out, footer: str = "") -> str:
  """Writes ``widths.md`` (with ``footer`` below the table), ``widths.csv`` and ``widths.png``.

  Returns the table.
  """
  table = widths_table(rows, delta)
  write_text(out / "widths.md", table + footer)
  write_csv(out / "widths.csv", rows)
  widths_plot(rows, delta, out / "widths.png")
  return table
