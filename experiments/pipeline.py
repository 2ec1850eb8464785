"""The pipeline behind `reproduce` and `sweep`: train what is missing, analyse, report.

Runs are ``(arm, run_name, TrainConfig)`` triples; each lives in
``OUT/<run_name>-<fingerprint>`` as a record (see :mod:`htsgd_jax.records`)
plus a cached ``analysis.json``. The fingerprint hashes every field that
changes the result (:meth:`TrainConfig.fingerprint`), so a directory belongs
to exactly one config: the same command with another learning rate trains
new runs beside the old ones, and a record whose config does not match its
directory is refused. Reports cover the runs of the current command only:
``runs.csv`` (one row per run), ``table.md`` (mean ± std over seeds),
``pruning_curves.png`` and ``column_norms.png``; ``OUT/manifest.json`` says
which command owns OUT, so that another command cannot overwrite its reports.

A program in flight is checkpointed in ``OUT/.checkpoints/<program>/`` (every
``checkpoint_every_s`` seconds and on SIGINT/SIGTERM) and resumed by the same
command, bit for bit; the checkpoint goes once its records are written.
"""

from __future__ import annotations

import csv
import io
import pathlib
from collections import defaultdict
from collections.abc import Sequence

import jax
import numpy as np

from experiments.cli import usage_error
from htsgd_jax import checkpoints, compression, interrupts, models, records
from htsgd_jax.data import Dataset
from htsgd_jax.train import TrainConfig, Trainer, broadcast_json, group_runs

ANALYSIS_FILE = "analysis.json"
MANIFEST_FILE = "manifest.json"
REBUILD_MANIFEST = "delete it: the next command rewrites it (the runs beside it are kept)"
CHECKPOINTS_DIR = ".checkpoints"
CSV_FIELDS = (
  "experiment",
  "arm",
  "width",
  "seed",
  "status",
  "steps",
  "train_accuracy",
  "test_accuracy",
  "fraction_pruned",
  "pruned_train_accuracy",
  "pruned_test_accuracy",
  "relative_error",
  "hill_column_norms",
  "mohammadi_weights",
  "top_column_energy",
  "noise_type",
  "alpha",
  "sigma",
  "lr",
  "batch_size",
  "wall_time_s",
  "run_dir",
)


Run = tuple  # (arm, run_name, TrainConfig), as Experiment.runs() yields


def run_dir(out: pathlib.Path, name: str, cfg: TrainConfig) -> pathlib.Path:
  """Where a run lives: its readable name, then its config's fingerprint.

  Example:
    >>> run_dir(pathlib.Path("out"), "noisy_n10_seed1", TrainConfig(width=10)).name[:16]
    'noisy_n10_seed1-'
  """
  return out / f"{name}-{cfg.fingerprint()}"


def reports_due(label: str, shard: tuple[int, int] | None, report_only: bool = False) -> bool:
  """Whether this process writes the reports: process 0, and not as one shard of a job array."""
  if jax.process_index() != 0:
    return False
  if shard and not report_only:
    print(
      f"[{label}] shard {shard[0]}/{shard[1]} done: once every shard is, run the same"
      " command without --shard (or with --report-only) for the reports."
    )
    return False
  return True


def exit_code(stop_signal: str | None) -> int:
  """0, or 128 + the number of the signal that stopped the training (130, 143)."""
  return interrupts.exit_code(stop_signal) if stop_signal else 0


def claim_out_dir(out: pathlib.Path, command: str, description: str) -> None:
  """Records that ``command`` owns OUT; refuses an OUT owned by another command.

  Only process 0 writes: other processes return at once.

  Example:
    >>> import tempfile
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> claim_out_dir(out, "sweep", "a sweep")
    >>> claim_out_dir(out, "reproduce", "a preset")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    experiments.cli.UsageError: error: ... holds the runs and reports of experiments.sweep...
  """
  if jax.process_index() != 0:
    return
  path = out / MANIFEST_FILE
  if path.is_file():
    try:
      owner = records.read_json(path, REBUILD_MANIFEST).get("command")
    except records.DamagedFileError as err:
      usage_error(str(err))
    if owner != command:
      usage_error(
        f"{out} holds the runs and reports of experiments.{owner}; writing"
        f" experiments.{command}'s reports there would mix them. Choose another --out."
      )
  records.write_json(path, dict(command=command, description=description))


def read_checked_record(run_dir_path: pathlib.Path, cfg: TrainConfig) -> dict | None:
  """The run's record if it is one of ``cfg``; refuses a damaged or foreign one, naming it.

  A record without checksum that says the run did not finish (written by an
  older version when a signal stopped it) holds no result to trust: it counts
  as absent, so the run resumes from its checkpoint and the record is rewritten.
  """
  try:
    record = records.read_record(run_dir_path)
    if record is None:
      return None
    stored = TrainConfig.from_dict(record.get("config", {}))
  except records.UnsealedRecordError as err:
    unsealed = records.read_json(err.path)
    if unsealed.get("status") in records.FINISHED:
      usage_error(str(err))
    return None
  except (records.DamagedFileError, ValueError, TypeError) as err:
    usage_error(
      str(err)
      if isinstance(err, records.DamagedFileError)
      else f"{run_dir_path / records.RECORD_FILE} holds no valid config ({err});"
      f" {records.RETRAIN_HINT}."
    )
  if stored.identity() != cfg.identity():
    differences = "; ".join(records.config_differences(stored.identity(), cfg.identity()))
    usage_error(
      f"{run_dir_path} holds a run of another config ({differences}); {records.RETRAIN_HINT}."
    )
  return record


def shard_of(runs: Sequence[Run], shard: tuple[int, int] | None) -> set[TrainConfig]:
  """The configs of shard ``(I, N)``: every N-th compiled program of the whole grid.

  Decided from the grid alone, not from what is finished, so that every
  member of a job array agrees.

  Example:
    >>> runs = [("a", "x", TrainConfig(width=w)) for w in (10, 20, 30)]
    >>> sorted(c.width for c in shard_of(runs, (1, 2)))
    [20]
  """
  configs = [cfg for _, _, cfg in runs]
  if shard is None:
    return set(configs)
  index, count = shard
  return {c for i, group in enumerate(group_runs(configs)) if i % count == index for c in group}


def train_missing(
  runs: Sequence[Run],
  dataset: Dataset,
  out: pathlib.Path,
  label: str,
  progress: bool = True,
  force: bool = False,
  checkpoint_every_s: float = 300.0,
  shard: tuple[int, int] | None = None,
) -> str | None:
  """Trains the runs that have no finished record, batched by compiled program.

  Each program's records are written as soon as it ends. On SIGINT/SIGTERM
  the program in flight writes a checkpoint and ``interrupted`` records, and
  this returns the signal's name (else None); the same call later resumes
  that program first, with the same runs, from its checkpoint. ``force``
  retrains every run; ``shard=(I, N)`` trains only that shard's programs.

  With several processes (``jax.distributed``), process 0 reads the disk and
  decides the programs, every process trains them together (runs sharded
  over all devices), and process 0 alone writes.
  """
  from tqdm import tqdm  # text bars: tqdm.auto warns in notebooks without ipywidgets

  writer = jax.process_index() == 0
  by_fingerprint = {cfg.fingerprint(): cfg for _, _, cfg in runs}
  dirs = {cfg: run_dir(out, name, cfg) for _, name, cfg in runs}
  plan = None
  if writer:
    mine = shard_of(runs, shard)
    todo = [
      cfg
      for cfg, d in dirs.items()
      if cfg in mine and (force or not records.is_finished(d, read_checked_record(d, cfg)))
    ]
    groups = _resumable_groups(out, by_fingerprint, todo) if todo and not force else []
    in_checkpoints = {c for g in groups for c in g}
    groups += group_runs([c for c in todo if c not in in_checkpoints])
    plan = dict(
      todo=len(todo), total=len(mine), groups=[[c.fingerprint() for c in g] for g in groups]
    )
    if todo:
      print(
        f"[{label}] training {len(todo)} of {len(mine)} runs ({len(mine) - len(todo)}"
        f" already finished) in {len(groups)} compiled program(s)"
        + (f", shard {shard[0]}/{shard[1]}" if shard else "")
      )
  plan = broadcast_json(plan)  # every process trains the same programs
  if not plan["groups"]:
    return None
  overall = tqdm(
    total=plan["todo"],
    disable=not (progress and writer),
    unit="run",
    desc=f"[{label}] runs",
    position=1,
    leave=True,
  )
  try:
    for fingerprints in plan["groups"]:
      trainer = Trainer([by_fingerprint[f] for f in fingerprints], dataset)
      checkpoint_dir = out / CHECKPOINTS_DIR / trainer.fingerprint()
      if force and writer:
        checkpoints.clear(checkpoint_dir)
      try:
        results = trainer.run(
          progress=progress,
          checkpoint_dir=checkpoint_dir,
          checkpoint_every_s=checkpoint_every_s,
          on_stop=overall.update,  # the runs bar moves as each run stops
        )
      except records.DamagedFileError as err:
        usage_error(str(err))
      if writer:
        for r in results:
          records.write_run(dirs[r.config], r.record(), r.params)
          overall.write(
            f"  {dirs[r.config].name}: {r.status} after {r.steps} steps,"
            f" train {r.final.get('train_accuracy', float('nan')):.2f}%,"
            f" {r.config.held_out} {r.final.get('test_accuracy', float('nan')):.2f}%"
          )
      if trainer.stop_signal:
        if writer:
          overall.write(f"[{label}] {trainer.stop_signal}: checkpoint in {checkpoint_dir}")
        return trainer.stop_signal
      if writer:
        checkpoints.clear(checkpoint_dir)
  finally:
    overall.close()
  return None


def _resumable_groups(
  out: pathlib.Path, by_fingerprint: dict[str, TrainConfig], todo: list[TrainConfig]
) -> list[list[TrainConfig]]:
  """Programs with a checkpoint under OUT whose runs all belong to this command."""
  groups, taken = [], set()
  for meta_path in sorted((out / CHECKPOINTS_DIR).glob(f"*/{checkpoints.META_FILE}")):
    try:
      fingerprints = records.read_json(meta_path, checkpoints.RESTART_HINT).get("runs", [])
    except records.DamagedFileError as err:
      usage_error(str(err))
    group = [by_fingerprint.get(f) for f in fingerprints]
    if group and all(group) and not taken & set(group) and set(group) & set(todo):
      groups.append(group)
      taken |= set(group)
  return groups


def analyse(
  runs: Sequence[Run], dataset: Dataset, out: pathlib.Path, label: str, prune_fraction: float = 0.1
) -> list[dict]:
  """Compression analysis of every finished run, cached in its directory.

  Every run's parameters are checked against its record's checksum, also when
  the analysis is cached; the cache is used only if it was computed from
  those parameters (``params_sha256``) and is itself unedited. A diverged
  run gets a row without results: it is counted, never averaged.
  """
  rows, pending = [], defaultdict(list)
  for arm, name, cfg in runs:
    path = run_dir(out, name, cfg)
    record = read_checked_record(path, cfg)
    if not records.is_finished(path, record):
      continue
    if record["status"] == "diverged":
      rows.append(_row(label, arm, cfg, path, record, None))
      continue
    analysis = _cached_analysis(path / ANALYSIS_FILE, record)
    if analysis is None or analysis.get("prune_fraction") != prune_fraction:
      pending[cfg.static_key()].append((arm, cfg, path, record))
      continue
    _or_exit(records.verify_params, path, record)
    rows.append(_row(label, arm, cfg, path, record, analysis))
  for same_model in pending.values():
    cfg = same_model[0][1]
    apply = apply_fn(cfg, dataset.num_classes)
    params = [read_params_or_exit(path, record) for _, _, path, record in same_model]
    print(f"[{label}] analysing {len(same_model)} runs of width {cfg.width}")
    for (arm, cfg, path, record), analysis in zip(
      same_model,
      compression.analyze(
        apply,
        params,
        dataset,
        prune_fraction,
        conv_column=cfg.conv_column,
        eval_batch_size=cfg.eval_batch_size,
      ),
    ):
      analysis["prune_fraction"] = prune_fraction
      analysis[records.PARAMS_CHECKSUM_KEY] = record[records.PARAMS_CHECKSUM_KEY]
      records.write_json(path / ANALYSIS_FILE, records.sealed(analysis))
      rows.append(_row(label, arm, cfg, path, record, analysis))
  return rows


def apply_fn(cfg: TrainConfig, num_classes: int):
  """``apply(params, x) -> logits`` of the network ``cfg`` trains."""
  model = models.build_model(cfg.model, num_classes, cfg.width, cfg.depth, cfg.compute_dtype)

  def apply(params, x):
    return model.apply({"params": params}, x)

  return apply


def _or_exit(read, *args):
  """``read(*args)``; a damaged file is refused, naming it and the way out."""
  try:
    return read(*args)
  except records.DamagedFileError as err:
    usage_error(str(err))


def read_params_or_exit(run_dir_path: pathlib.Path, record: dict):
  """A finished run's parameters, checked against its record; a damaged file is refused."""
  return _or_exit(records.read_params, run_dir_path, record)


def _cached_analysis(path: pathlib.Path, record: dict) -> dict | None:
  """A run's cached analysis, if computed from the record's parameters and unedited.

  A damaged or edited cache is recomputed, with a note; one of other
  parameters (the run was retrained) is recomputed silently.
  """
  if not path.is_file():
    return None
  try:
    analysis = records.read_json(path)
    records.check_seal(analysis, path)
  except records.DamagedFileError:
    print(f"note: {path} is damaged; recomputing it")
    return None
  if analysis.get(records.PARAMS_CHECKSUM_KEY) != record.get(records.PARAMS_CHECKSUM_KEY):
    return None
  return analysis


def _row(label, arm, cfg: TrainConfig, path, record, analysis: dict | None) -> dict:
  """One run's row; a run without analysis (diverged) has no results, only its status."""
  final = record.get("final", {}) if analysis is not None else {}
  row = dict(
    experiment=label,
    arm=arm,
    width=cfg.width,
    seed=cfg.seed,
    status=record["status"],
    steps=record["steps"],
    train_accuracy=final.get("train_accuracy"),
    test_accuracy=final.get("test_accuracy"),
    noise_type=cfg.noise_type,
    alpha=cfg.alpha,
    sigma=cfg.sigma,
    lr=cfg.lr,
    batch_size=cfg.batch_size,
    wall_time_s=record.get("wall_time_s"),
    run_dir=str(path),
  )
  if analysis is not None:
    row.update({k: analysis.get(k) for k in CSV_FIELDS if k in analysis})
    row["curve"] = analysis["curve"]
    row["column_norms"] = analysis["column_norms"]
  return row


def has_results(row: dict) -> bool:
  """Whether a row's run has results to average (a diverged run has none)."""
  return "curve" in row


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


def stopped(stop_signal: str | None) -> int:
  """Says how to resume after a signal stopped the training; returns the exit code."""
  if stop_signal:
    print(
      f"{stop_signal}: rerun the same command to resume; finished runs and the"
      " checkpoint of the program in flight are kept."
    )
  return exit_code(stop_signal)


def csv_cell(value):
  """A CSV cell: a value without meaning (None, NaN, inf) is an empty cell.

  Example:
    >>> csv_cell(float("nan")), csv_cell(None), csv_cell(0.5), csv_cell("converged")
    ('', '', 0.5, 'converged')
  """
  if value is None or (isinstance(value, (float, np.floating)) and not np.isfinite(value)):
    return ""
  return value


def write_csv(path: pathlib.Path, rows: list[dict], fields: Sequence[str] | None = None) -> None:
  """Writes ``rows`` as CSV atomically; cells without a value (None, NaN, inf) are empty."""
  text = io.StringIO()
  writer = csv.DictWriter(text, fieldnames=list(fields or rows[0]), extrasaction="ignore")
  writer.writeheader()
  writer.writerows({k: csv_cell(v) for k, v in r.items()} for r in rows)
  write_text(path, text.getvalue())


def write_text(path: pathlib.Path, text: str) -> None:
  """Writes a report atomically: a failed write leaves the previous file, and names this one."""
  records.atomic_write(path, lambda f: f.write(text.encode()))


def save_figure(fig, path: pathlib.Path) -> pathlib.Path:
  """Saves a matplotlib figure as PNG atomically (see :func:`write_text`), then closes it."""
  import matplotlib.pyplot as plt

  try:
    records.atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120))
  finally:
    plt.close(fig)
  return path


def write_outputs(rows: list[dict], out: pathlib.Path) -> tuple[str, list[str]]:
  """Writes runs.csv, table.md and the plots; returns the table and the files' names."""
  out.mkdir(parents=True, exist_ok=True)
  write_csv(out / "runs.csv", rows, CSV_FIELDS)
  table = markdown_table(rows)
  write_text(out / "table.md", table)
  return table, ["runs.csv", "table.md", *(p.name for p in plot(rows, out))]
