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
import csv
import json
import pathlib
import sys
from collections import defaultdict

import numpy as np

from experiments.presets import GROUPS, NAMES, Experiment, get_experiments
from htsgd_jax import compression, models, records
from htsgd_jax.data import Dataset, load_dataset
from htsgd_jax.train import TrainConfig, Trainer, group_runs

ANALYSIS_FILE = "analysis.json"
CSV_FIELDS = ("experiment", "arm", "width", "seed", "status", "steps", "train_accuracy",
              "test_accuracy", "fraction_pruned", "pruned_train_accuracy",
              "pruned_test_accuracy", "relative_error", "hill_column_norms",
              "mohammadi_weights", "noise_type", "alpha", "sigma", "lr", "batch_size",
              "wall_time_s", "run_dir")


def train_missing(exp: Experiment, dataset: Dataset, out: pathlib.Path, progress: bool) -> bool:
  """Trains the experiment's runs without a finished record. False if interrupted."""
  dirs = {cfg: out / name for _, name, cfg in exp.runs()}
  todo = [cfg for cfg, d in dirs.items() if not records.is_finished(d)]
  if not todo:
    return True
  print(f"[{exp.name}] training {len(todo)} of {len(dirs)} runs"
        f" ({len(dirs) - len(todo)} already finished)")
  for group in group_runs(todo):
    results = Trainer(group, dataset).run(progress=progress)
    for r in results:
      records.write_run(dirs[r.config], r.record(), r.params)
    if any(r.status == "interrupted" for r in results):
      return False
  return True


def analyse(exp: Experiment, dataset: Dataset, out: pathlib.Path) -> list[dict]:
  """Compression analysis of every finished run, cached in its directory."""
  rows, pending = [], defaultdict(list)
  for arm, name, cfg in exp.runs():
    run_dir = out / name
    record = records.read_record(run_dir)
    if record is None or not records.is_finished(run_dir):
      continue
    cached = run_dir / ANALYSIS_FILE
    analysis = json.loads(cached.read_text()) if cached.is_file() else None
    if analysis is None or analysis.get("prune_fraction") != exp.prune_fraction:
      pending[cfg.width].append((arm, cfg, run_dir, record))
      continue
    rows.append(_row(exp, arm, cfg, run_dir, record, analysis))
  for width, runs in pending.items():
    cfg = runs[0][1]
    model = models.build_model(cfg.model, dataset.num_classes, cfg.width, cfg.depth)
    apply = lambda p, x, model=model: model.apply({"params": p}, x)
    params = [records.read_params(run_dir) for _, _, run_dir, _ in runs]
    print(f"[{exp.name}] analysing {len(runs)} runs of width {width}")
    for (arm, cfg, run_dir, record), analysis in zip(
        runs, compression.analyze(apply, params, dataset, exp.prune_fraction,
                                  conv_column=cfg.conv_column,
                                  eval_batch_size=cfg.eval_batch_size)):
      analysis["prune_fraction"] = exp.prune_fraction
      records._atomic_write(run_dir / ANALYSIS_FILE,
                            lambda f, a=analysis: f.write(json.dumps(records._json_safe(a)).encode()))
      rows.append(_row(exp, arm, cfg, run_dir, record, analysis))
  return rows


def _row(exp, arm, cfg: TrainConfig, run_dir, record, analysis) -> dict:
  final = record.get("final", {})
  row = dict(experiment=exp.name, arm=arm, width=cfg.width, seed=cfg.seed,
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
  colors = {"plain": "tab:blue", "noisy": "tab:red"}
  panels = sorted({(r["experiment"], r["width"]) for r in rows})
  paths = []
  fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
  for ax, (exp, width) in zip(axes[0], panels):
    for arm in ("plain", "noisy"):
      curves = np.asarray([[c[1] for c in r["curve"]] for r in rows
                           if (r["experiment"], r["width"], r["arm"]) == (exp, width, arm)])
      if curves.size == 0:
        continue
      x = [c[0] for c in next(r for r in rows if r["arm"] == arm and r["experiment"] == exp)["curve"]]
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
    for arm in ("plain", "noisy"):
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
      exp = Experiment(**{**exp.__dict__, "seeds": tuple(args.seeds)})
    cfg = exp.noisy
    try:
      dataset = load_dataset(cfg.dataset, data_dir=args.data_dir or cfg.data_dir,
                             download=args.download or cfg.download, source=cfg.data_source,
                             train_subset=cfg.train_subset)
    except (ValueError, ModuleNotFoundError, FileNotFoundError) as err:
      raise SystemExit(f"error: {err}") from None
    try:
      complete = train_missing(exp, dataset, out / exp.name, not args.no_progress) and complete
    except KeyboardInterrupt:
      complete = False
    rows.extend(analyse(exp, dataset, out / exp.name))
    if not complete:
      break
  if not rows:
    print("no finished runs yet.")
    return 130
  table = write_outputs(rows, out)
  print(f"\n{table}\nwritten to {out}/ (runs.csv, table.md, pruning_curves.png, column_norms.png)")
  if not complete:
    print("interrupted: rerun the same command to finish the remaining runs.")
    return 130
  return 0


if __name__ == "__main__":
  sys.exit(main())
