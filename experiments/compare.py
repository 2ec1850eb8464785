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
from collections import defaultdict

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.timing import timed_interleaved
from experiments import pipeline, tuning
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
from experiments.pipeline import mean_std
from experiments.presets import Experiment, get_experiments
from experiments.tuning import METHODS, Trained, strength_label
from htsgd_jax import columns as columns_lib
from htsgd_jax import compression, pruning, records
from htsgd_jax.data import Dataset
from htsgd_jax.train import TrainConfig, check_fits

SIGMA_FACTORS = (0.1, 0.3, 1.0, 3.0, 10.0)
LATENCY_BATCHES = (1, 1000)
# The compact network must compute the masked one's logits to float32 rounding.
MATCH_TOLERANCE = 1e-4


def strength_grid(exp: Experiment, method: str) -> tuple[float, ...]:
  """The strengths tuned over for ``method`` (plain SGD has none: ``(0.0,)``).

  Example:
    >>> from experiments.presets import get_experiments
    >>> strength_grid(get_experiments("ecg5000_fcn:quick")[0], "type2")
    (0.05, 0.15, 0.5, 1.5, 5.0)
  """
  if method == "plain":
    return (0.0,)
  if method == "group_lasso":
    return tuple(exp.group_lasso_grid)
  return tuple(float(f"{exp.noisy.sigma * f:.6g}") for f in SIGMA_FACTORS)


def method_config(exp: Experiment, method: str, strength: float) -> TrainConfig:
  """The preset's config, trained with ``method`` at ``strength``, on the compare budget.

  Example:
    >>> from experiments.presets import get_experiments
    >>> cfg = method_config(get_experiments("ecg5000_fcn:quick")[0], "gaussian", 0.5)
    >>> cfg.alpha, cfg.noise_type, cfg.sigma
    (2.0, 2, 0.5)
  """
  base = dataclasses.replace(exp.noisy, max_steps=exp.compare_steps or exp.noisy.max_steps)
  if method == "plain":
    return dataclasses.replace(base, noise_type=0, sigma=0.0)
  if method == "group_lasso":
    return dataclasses.replace(base, noise_type=0, sigma=0.0, group_lasso=strength)
  if method == "gaussian":
    return dataclasses.replace(base, alpha=2.0, sigma=strength)
  if method in ("type1", "type2", "type3"):
    return dataclasses.replace(base, noise_type=int(method[-1]), sigma=strength)
  raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}.")


def measure(trained: list[Trained], found, dataset: Dataset, timing_repeats: int) -> list[dict]:
  """Builds every run's smallest network for real; checks it against the masked one; times it.

  A run with no version at the target accuracy is measured at full size.
  """
  cfg = trained[0].config
  apply = pipeline.apply_fn(cfg, dataset.num_classes)
  x_check = jnp.asarray(dataset.x_test[:1000])
  inputs = {
    b: jnp.asarray(np.resize(dataset.x_test, (b, *dataset.input_shape))) for b in LATENCY_BATCHES
  }
  apply_dense = jax.jit(pruning.dense_apply)
  rows = []
  for i, t in enumerate(trained):
    if found.units[i, 0] < 0:
      # No version of this network reaches the target: it counts at full size.
      widths = {
        k: np.shape(v["kernel"])[1] for k, v in t.params.items() if k != columns_lib.CLASSIFIER_NAME
      }
      compact, mismatch = pruning.CompactNetwork(t.params, widths), 0.0
    else:
      masked = compression.without_units(
        t.params, found.units[i, 0], found.n_units, cfg.conv_column
      )
      compact = pruning.compact_dense(masked)
      want = np.asarray(apply(masked, x_check))
      got = np.asarray(apply_dense(compact.params, x_check))
      mismatch = float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30))
      if not mismatch <= MATCH_TOLERANCE:
        raise AssertionError(
          f"the compact network of {t.method} seed {t.seed} differs from its masked version"
          f" by {mismatch:.2e} of the logit scale; this is a bug in compact_dense."
        )
    row = dict(
      compact_widths=sum(compact.widths.values()),
      compact_mismatch=mismatch,
      **{f"compact_{k}": v for k, v in pruning.dense_cost(compact.params).items()},
      **{f"full_{k}": v for k, v in pruning.dense_cost(t.params).items()},
    )
    # On the device first, as when serving: the timings are the forward passes alone.
    on_device = dict(full=jax.device_put(t.params), compact=jax.device_put(compact.params))
    for b in LATENCY_BATCHES:
      times = timed_interleaved(
        {
          name: (lambda b=b, p=params: apply_dense(p, inputs[b]))
          for name, params in on_device.items()
        },
        timing_repeats if b > 1 else 5 * timing_repeats,
      )
      row[f"full_latency_b{b}_ms"] = 1e3 * times["full"]["median"]
      row[f"compact_latency_b{b}_ms"] = 1e3 * times["compact"]["median"]
    rows.append(row)
  return rows


def curve_parameters(trained: list[Trained], found, conv_column: str) -> np.ndarray:
  """``(runs, points)``: parameters of the compact network at each curve point."""
  out = np.empty(found.curve.shape)
  for i, t in enumerate(trained):
    for j, k in enumerate(found.grid_units):
      masked = compression.without_units(t.params, k, found.n_units, conv_column)
      out[i, j] = pruning.dense_cost(pruning.compact_dense(masked).params)["parameters"]
  return out


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
  pipeline.save_figure(fig, path)


def evaluate_methods(
  trained: list[Trained], dataset: Dataset, delta: float, timing_repeats: int
) -> tuple[list[dict], list[dict]]:
  """Every run's smallest network within Δ of plain SGD, built, checked and timed.

  Returns one row per run (the table's and ``compare.csv``'s), and one curve
  per run: test accuracy against parameters kept over the search grid.
  """
  found, accuracy, reference = tuning.search(trained, dataset, delta, own=True)
  measured = measure(trained, found, dataset, timing_repeats)
  parameters = curve_parameters(trained, found, trained[0].config.conv_column)
  rows, curves = [], []
  for i, t in enumerate(trained):
    units, own_units = found.units[i]
    rows.append(
      dict(
        method=t.method,
        strength=t.strength,
        seed=t.seed,
        status=t.record["status"],
        steps=t.record["steps"],
        test_accuracy=float(accuracy[i]),
        target_accuracy=float(reference[i] - delta),
        reached_target=bool(units >= 0),
        units_removed=max(int(units), 0),
        units_kept=1 - max(int(units), 0) / found.n_units,
        parameters_kept=measured[i]["compact_parameters"] / measured[i]["full_parameters"],
        pruned_test_accuracy=float(found.accuracy[i, 0]),
        own_units_kept=1 - max(int(own_units), 0) / found.n_units,
        own_pruned_test_accuracy=float(found.accuracy[i, 1]),
        **measured[i],
        wall_time_s=t.record.get("wall_time_s"),
      )
    )
    curves.append(
      dict(
        method=t.method,
        reached=bool(units >= 0),
        parameters=parameters[i],
        test_accuracy=found.curve[i],
        hidden_units=found.n_units - found.grid_units,
        points=[
          dict(
            method=t.method,
            seed=t.seed,
            units_removed=int(k),
            parameters=int(parameters[i, j]),
            test_accuracy=float(found.curve[i, j]),
          )
          for j, k in enumerate(found.grid_units)
        ],
      )
    )
  return rows, curves


@command
def main(argv=None) -> int:
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
  tuning.add_delta_flag(parser)
  parser.add_argument(
    "--validation",
    type=float,
    default=tuning.VALIDATION,
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
  args = parser.parse_args(argv)
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
  tuning.check_delta(args.delta)
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
  pipeline.write_text(out / "tuning.md", tuning_md)
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
  rows, curves = evaluate_methods(trained, dataset, args.delta, args.timing_repeats)
  pipeline.write_csv(out / "compare.csv", rows)
  pipeline.write_csv(out / "curves.csv", [point for c in curves for point in c["points"]])
  pareto_plot(
    rows,
    curves,
    float(np.mean([r["target_accuracy"] for r in rows])) + args.delta,  # plain SGD's
    args.delta,
    out / "pareto.png",
  )
  table = compare_table(rows, args.delta)
  pipeline.write_text(out / "compare.md", table)
  records.write_json(out / "chosen.json", dict(delta=args.delta, strengths=chosen))
  print(
    f"\n{table}\nwritten to {out}/ (compare.md, compare.csv, curves.csv, pareto.png, tuning.md)"
  )
  return 0


if __name__ == "__main__":
  sys.exit(main())
