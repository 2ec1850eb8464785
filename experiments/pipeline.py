"""The pipeline behind `reproduce` and `sweep`: train what is missing, analyse, report.

Runs are ``(arm, run_name, TrainConfig)`` triples; each lives in
``OUT/run_name`` as a record (see :mod:`htsgd_jax.records`) plus a cached
``analysis.json``. Reports: ``runs.csv`` (one row per run), ``table.md``
(mean ± std over seeds), ``pruning_curves.png`` and ``column_norms.png``.
"""

from __future__ import annotations

import csv
import json
import pathlib
from collections import defaultdict
from typing import Sequence

import numpy as np

from htsgd_jax import compression, models, records
from htsgd_jax.data import Dataset
from htsgd_jax.train import TrainConfig, Trainer, group_runs

ANALYSIS_FILE = "analysis.json"
CSV_FIELDS = ("experiment", "arm", "width", "seed", "status", "steps", "train_accuracy",
              "test_accuracy", "fraction_pruned", "pruned_train_accuracy",
              "pruned_test_accuracy", "relative_error", "hill_column_norms",
              "mohammadi_weights", "noise_type", "alpha", "sigma", "lr", "batch_size",
              "wall_time_s", "run_dir")


Run = tuple  # (arm, run_name, TrainConfig), as Experiment.runs() yields


def train_missing(runs: Sequence[Run], dataset: Dataset, out: pathlib.Path, label: str,
                  progress: bool = True) -> bool:
  """Trains the runs that have no finished record, batched by compiled program.

  Each group's records are written as soon as it ends, so a killed sweep
  loses at most the group in flight. Returns False if interrupted (Ctrl-C).
  """
  from tqdm.auto import tqdm
  dirs = {cfg: out / name for _, name, cfg in runs}
  todo = [cfg for cfg, d in dirs.items() if not records.is_finished(d)]
  if not todo:
    return True
  groups = group_runs(todo)
  print(f"[{label}] training {len(todo)} of {len(dirs)} runs ({len(dirs) - len(todo)} already"
        f" finished) in {len(groups)} compiled program(s)")
  overall = tqdm(total=len(todo), disable=not progress, unit="run", desc=f"[{label}] runs",
                 position=1, leave=True)
  try:
    for group in groups:
      results = Trainer(group, dataset).run(progress=progress)
      for r in results:
        records.write_run(dirs[r.config], r.record(), r.params)
        overall.write(f"  {dirs[r.config].name}: {r.status} after {r.steps} steps,"
                      f" train {r.final.get('train_accuracy', float('nan')):.2f}%,"
                      f" test {r.final.get('test_accuracy', float('nan')):.2f}%")
      overall.update(len(results))
      if any(r.status == "interrupted" for r in results):
        return False
  finally:
    overall.close()
  return True


def analyse(runs: Sequence[Run], dataset: Dataset, out: pathlib.Path, label: str,
            prune_fraction: float = 0.1) -> list[dict]:
  """Compression analysis of every finished run, cached in its directory."""
  rows, pending = [], defaultdict(list)
  for arm, name, cfg in runs:
    run_dir = out / name
    record = records.read_record(run_dir)
    if not records.is_finished(run_dir, record):
      continue
    cached = run_dir / ANALYSIS_FILE
    analysis = json.loads(cached.read_text()) if cached.is_file() else None
    if analysis is None or analysis.get("prune_fraction") != prune_fraction:
      pending[cfg.static_key()].append((arm, cfg, run_dir, record))
      continue
    rows.append(_row(label, arm, cfg, run_dir, record, analysis))
  for same_model in pending.values():
    cfg = same_model[0][1]
    model = models.build_model(cfg.model, dataset.num_classes, cfg.width, cfg.depth)
    apply = lambda p, x, model=model: model.apply({"params": p}, x)
    params = [records.read_params(run_dir) for _, _, run_dir, _ in same_model]
    print(f"[{label}] analysing {len(same_model)} runs of width {cfg.width}")
    for (arm, cfg, run_dir, record), analysis in zip(
        same_model, compression.analyze(apply, params, dataset, prune_fraction,
                                        conv_column=cfg.conv_column,
                                        eval_batch_size=cfg.eval_batch_size)):
      analysis["prune_fraction"] = prune_fraction
      records.write_json(run_dir / ANALYSIS_FILE, analysis)
      rows.append(_row(label, arm, cfg, run_dir, record, analysis))
  return rows


def _row(label, arm, cfg: TrainConfig, run_dir, record, analysis) -> dict:
  final = record.get("final", {})
  row = dict(experiment=label, arm=arm, width=cfg.width, seed=cfg.seed,
             status=record["status"], steps=record["steps"],
             train_accuracy=final.get("train_accuracy"), test_accuracy=final.get("test_accuracy"),
             noise_type=cfg.noise_type, alpha=cfg.alpha, sigma=cfg.sigma, lr=cfg.lr,
             batch_size=cfg.batch_size, wall_time_s=record.get("wall_time_s"),
             run_dir=str(run_dir))
  row.update({k: analysis.get(k) for k in CSV_FIELDS if k in analysis})
  row["curve"] = analysis["curve"]
  row["column_norms"] = analysis["column_norms"]
  return row


def _mean_std(values) -> str:
  v = np.asarray([x for x in values if x is not None and np.isfinite(float(x))], float)
  if v.size == 0:
    return "—"
  return f"{v.mean():.2f} ± {v.std():.2f}" if v.size > 1 else f"{v.mean():.2f}"


def markdown_table(rows: list[dict]) -> str:
  """Mean ± std over seeds per experiment, width and arm."""
  head = ("| experiment | width | arm | runs (converged) | train acc. | test acc. |"
          " pruned test acc. | fraction pruned (%) | rel. error | α̂ Hill (col. norms) |")
  lines = [head, "|" + "---|" * (head.count("|") - 1)]
  groups = defaultdict(list)
  for r in rows:
    groups[(r["experiment"], r["width"], r["arm"])].append(r)
  for (exp, width, arm), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] != "plain")):
    converged = sum(r["status"] == "converged" for r in rs)
    lines.append(
        f"| {exp} | {width} | {arm} | {len(rs)} ({converged}) | {_mean_std(r['train_accuracy'] for r in rs)}"
        f" | {_mean_std(r['test_accuracy'] for r in rs)} | {_mean_std(r['pruned_test_accuracy'] for r in rs)}"
        f" | {_mean_std(100 * r['fraction_pruned'] for r in rs)} | {_mean_std(r['relative_error'] for r in rs)}"
        f" | {_mean_std(r['hill_column_norms'] for r in rs)} |")
  return "\n".join(lines) + "\n"


def plot(rows: list[dict], out: pathlib.Path) -> list[pathlib.Path]:
  """Pruning curves and column-norm survival functions, one panel per experiment."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  arms = sorted({r["arm"] for r in rows}, key=lambda a: (a != "plain", a))
  palette = ["tab:red", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink"]
  colors = {a: "tab:blue" if a == "plain" else palette[i % len(palette)]
            for i, a in enumerate(a for a in arms if a != "plain")}
  colors.setdefault("plain", "tab:blue")
  panels = sorted({(r["experiment"], r["width"]) for r in rows})
  paths = []
  fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
  for ax, (exp, width) in zip(axes[0], panels):
    for arm in arms:
      curves = np.asarray([[c[1] for c in r["curve"]] for r in rows
                           if (r["experiment"], r["width"], r["arm"]) == (exp, width, arm)])
      if curves.size == 0:
        continue
      x = [c[0] for c in next(r for r in rows if r["arm"] == arm and r["experiment"] == exp)["curve"]]
      curves = curves.reshape(len(curves), len(x))
      ax.plot(x, curves.mean(0), "o-", color=colors[arm], label=f"{arm} ({len(curves)} seeds)")
      ax.fill_between(x, curves.min(0), curves.max(0), color=colors[arm], alpha=0.2)
    ax.set(title=f"{exp} (n={width})", xlabel="fraction of columns pruned (each hidden layer)",
           ylabel="test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend()
  fig.tight_layout()
  paths.append(out / "pruning_curves.png")
  fig.savefig(paths[-1], dpi=120)
  plt.close(fig)

  fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
  for ax, (exp, width) in zip(axes[0], panels):
    for arm in arms:
      norms = np.concatenate([np.asarray(r["column_norms"], float) for r in rows
                              if (r["experiment"], r["width"], r["arm"]) == (exp, width, arm)]
                             or [np.array([])])
      norms = np.sort(norms[norms > 0])
      if norms.size == 0:
        continue
      survival = 1.0 - np.arange(norms.size) / norms.size
      ax.loglog(norms, survival, color=colors[arm], label=arm)
    ax.set(title=f"{exp} (n={width})", xlabel="column norm (first hidden layer)",
           ylabel="P(norm > x)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
  fig.tight_layout()
  paths.append(out / "column_norms.png")
  fig.savefig(paths[-1], dpi=120)
  plt.close(fig)
  return paths


def report(rows: list[dict], out: pathlib.Path, complete: bool) -> int:
  """Writes and prints the reports of the finished runs; returns the exit code.

  130 (as for Ctrl-C) if the training was interrupted, else 0.
  """
  if rows:
    table = write_outputs(rows, out)
    print(f"\n{table}\nwritten to {out}/ (runs.csv, table.md, pruning_curves.png,"
          " column_norms.png)")
  else:
    print("no finished runs yet.")
  if not complete:
    print("interrupted: rerun the same command to resume; finished runs are kept.")
    return 130
  return 0


def write_outputs(rows: list[dict], out: pathlib.Path) -> str:
  out.mkdir(parents=True, exist_ok=True)
  with open(out / "runs.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
  table = markdown_table(rows)
  (out / "table.md").write_text(table)
  plot(rows, out)
  return table
