"""Where runs live, and training the missing ones: the first stage of every experiment.

Runs are :class:`experiments.runs.RunSpec`; each lives in
``OUT/<name>-<fingerprint>`` as a record (see :mod:`htsgd_jax.records`).
The fingerprint hashes every field that changes the result
(:meth:`TrainConfig.fingerprint`), so a directory belongs to exactly one
config: the same command with another learning rate trains new runs beside
the old ones, and a record whose config does not match its directory is
refused. ``OUT/manifest.json`` says which command owns OUT, so that another
command cannot overwrite its reports. What comes after training lives beside
this module: :mod:`experiments.analysis` (compression of each finished run)
and :mod:`experiments.report` (runs.csv, table.md, plots).

A program in flight is checkpointed in ``OUT/.checkpoints/<program>/`` (every
``checkpoint_every_s`` seconds and on SIGINT/SIGTERM) and resumed by the same
command, bit for bit; the checkpoint goes once its records are written.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence
from typing import NamedTuple

import jax

from experiments.cli import RETRAIN_HINT, refuse_damaged, usage_error
from experiments.runs import FinishedRun, RunOptions, RunSpec
from htsgd_jax import checkpoints, interrupts, records
from htsgd_jax.data import Dataset
from htsgd_jax.training import TrainConfig, Trainer, broadcast_json, group_runs

MANIFEST_FILE = "manifest.json"

# A finished run's compression analysis, sealed, beside its record (experiments.analysis).
ANALYSIS_FILE = "analysis.json"

KEPT_ANALYSIS_HINT = (
  "its run has no params.npz to recompute it from: restore the file (git checkout -- PATH)"
  " or delete the run's directory to retrain it"
)

REBUILD_MANIFEST = "delete it: the next command rewrites it (the runs beside it are kept)"

CHECKPOINTS_DIR = ".checkpoints"


class Trained(NamedTuple):
  """What :func:`train_missing` did.

  Attributes:
    finished: the runs it finished, by config, with their sealed records and
      their parameters in memory, so that analysis need not read back what
      was just written (empty on every process but 0).
    stop_signal: the name of the signal that stopped the training, or None.
  """

  finished: dict[TrainConfig, FinishedRun]
  stop_signal: str | None


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


def stopped(stop_signal: str | None) -> int:
  """Says how to resume after a signal stopped the training; returns the exit code."""
  if stop_signal:
    print(
      f"{stop_signal}: rerun the same command to resume; finished runs and the"
      " checkpoint of the program in flight are kept."
    )
  return exit_code(stop_signal)


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
      refuse_damaged(err)
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
      refuse_damaged(err)
    return None
  except records.DamagedFileError as err:
    refuse_damaged(err)
  except (ValueError, TypeError) as err:
    usage_error(
      f"{run_dir_path / records.RECORD_FILE} holds no valid config ({err}); {RETRAIN_HINT}."
    )
  if stored.identity() != cfg.identity():
    differences = "; ".join(records.config_differences(stored.identity(), cfg.identity()))
    usage_error(f"{run_dir_path} holds a run of another config ({differences}); {RETRAIN_HINT}.")
  return record


def is_finished(run_dir_path: pathlib.Path, record: dict | None) -> bool:
  """Whether a run needs no more training: it ended by itself, and its results are kept.

  Kept means its ``params.npz``, or (a run whose params were removed, as in
  the repository's results, where params are never committed) its sealed
  ``analysis.json``; a diverged run needs neither.

  Example:
    >>> import tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> is_finished(d, dict(status="max_steps")), is_finished(d, dict(status="diverged"))
    (False, True)
  """
  if not record or record.get("status") not in records.FINISHED:
    return False
  return (
    record["status"] == "diverged"
    or (run_dir_path / records.PARAMS_FILE).is_file()
    or (run_dir_path / ANALYSIS_FILE).is_file()
  )


def read_kept_analysis(run_dir_path: pathlib.Path, record: dict) -> dict | None:
  """The sealed analysis of a run without params, or None if it has none.

  Nothing can recompute it, so a damaged or edited one, or one of other
  parameters than the record's, is refused in one line naming the file.
  """
  path = run_dir_path / ANALYSIS_FILE
  if not path.is_file():
    return None
  hint = KEPT_ANALYSIS_HINT.replace("PATH", str(path))
  try:
    analysis = records.read_json(path, hint)
    records.check_seal(analysis, path, hint)
  except records.DamagedFileError as err:
    refuse_damaged(err)
  if analysis.get(records.PARAMS_CHECKSUM_KEY) != record.get(records.PARAMS_CHECKSUM_KEY):
    usage_error(
      str(
        records.DamagedFileError(
          path, "it was computed from other parameters than its record's", hint
        )
      )
    )
  return analysis


def shard_of(runs: Sequence[RunSpec], shard: tuple[int, int] | None) -> set[TrainConfig]:
  """The configs of shard ``(I, N)``: every N-th compiled program of the whole grid.

  Decided from the grid alone, not from what is finished, so that every
  member of a job array agrees.

  Example:
    >>> runs = [RunSpec(f"n{w}", "a", TrainConfig(width=w)) for w in (10, 20, 30)]
    >>> sorted(c.width for c in shard_of(runs, (1, 2)))
    [20]
  """
  configs = [spec.config for spec in runs]
  if shard is None:
    return set(configs)
  index, count = shard
  return {c for i, group in enumerate(group_runs(configs)) if i % count == index for c in group}


def train_missing(
  runs: Sequence[RunSpec],
  dataset: Dataset,
  out: pathlib.Path,
  label: str,
  options: RunOptions = RunOptions(),
  shard: tuple[int, int] | None = None,
) -> Trained:
  """Trains the runs that have no finished record, batched by compiled program.

  Each program's records are written as soon as it ends. On SIGINT/SIGTERM
  the program in flight writes a checkpoint and ``interrupted`` records, and
  this returns the signal's name; the same call later resumes
  that program first, with the same runs, from its checkpoint.
  ``options.force`` retrains every run; ``shard=(I, N)`` trains only that
  shard's programs.

  With several processes (``jax.distributed``), process 0 reads the disk and
  decides the programs, every process trains them together (runs sharded
  over all devices), and process 0 alone writes.
  """
  from tqdm import tqdm  # text bars: tqdm.auto warns in notebooks without ipywidgets

  writer = jax.process_index() == 0
  by_fingerprint = {spec.config.fingerprint(): spec.config for spec in runs}
  specs = {spec.config: spec for spec in runs}
  plan = _programs_to_train(runs, by_fingerprint, out, label, options, shard) if writer else None
  plan = broadcast_json(plan)  # every process trains the same programs
  finished = {}
  if not plan["groups"]:
    return Trained(finished, None)
  overall = tqdm(
    total=plan["todo"],
    disable=not (options.progress and writer),
    unit="run",
    desc=f"[{label}] runs",
    position=1,
    leave=True,
  )
  try:
    for fingerprints in plan["groups"]:
      trainer = Trainer([by_fingerprint[f] for f in fingerprints], dataset)
      checkpoint_dir = out / CHECKPOINTS_DIR / trainer.fingerprint()
      if options.force and writer:
        checkpoints.clear(checkpoint_dir)
      try:
        results = trainer.run(
          progress=options.progress,
          checkpoint_dir=checkpoint_dir,
          checkpoint_every_s=options.checkpoint_every_s,
          on_stop=overall.update,  # the runs bar moves as each run stops
        )
      except records.DamagedFileError as err:
        refuse_damaged(err)
      if writer:
        for r in results:
          finished.update(_write(specs[r.config], r, out))
          overall.write(
            f"  {specs[r.config].directory(out).name}: {r.status} after {r.steps} steps,"
            f" train {r.final.get('train_accuracy', float('nan')):.2f}%,"
            f" {r.config.held_out} {r.final.get('test_accuracy', float('nan')):.2f}%"
          )
      if trainer.stop_signal:
        if writer:
          overall.write(f"[{label}] {trainer.stop_signal}: checkpoint in {checkpoint_dir}")
        return Trained(finished, trainer.stop_signal)
      if writer:
        checkpoints.clear(checkpoint_dir)
  finally:
    overall.close()
  return Trained(finished, None)


def _write(spec: RunSpec, result, out: pathlib.Path) -> dict[TrainConfig, FinishedRun]:
  """Writes a run's record and params; a run that ended by itself is returned, kept in memory."""
  path = records.write_run(spec.directory(out), result.record(), result.params)
  if result.status not in records.FINISHED:  # interrupted: resumed from its checkpoint
    return {}
  return {spec.config: FinishedRun(spec, records.read_record(path), result.params)}


def _programs_to_train(
  runs: Sequence[RunSpec],
  by_fingerprint: dict[str, TrainConfig],
  out: pathlib.Path,
  label: str,
  options: RunOptions,
  shard: tuple[int, int] | None,
) -> dict:
  """What is left to train, read from the disk (process 0): the runs' programs, as fingerprints.

  Programs with a checkpoint come first, with the runs they held; the other
  unfinished runs are grouped anew. Returns ``todo`` (runs), ``total`` (of
  this shard) and ``groups``.
  """
  mine = shard_of(runs, shard)
  todo = []
  for spec in runs:
    cfg, d = spec.config, spec.directory(out)
    if cfg not in mine or cfg in todo:
      continue
    # --force retrains a damaged one
    record = None if options.force else read_checked_record(d, cfg)
    if options.force or not is_finished(d, record):
      todo.append(cfg)
    elif not (d / records.PARAMS_FILE).is_file() and record["status"] != "diverged":
      read_kept_analysis(d, record)  # a damaged one is refused now, not after training
  groups = _resumable_groups(out, by_fingerprint, todo) if todo and not options.force else []
  in_checkpoints = {c for g in groups for c in g}
  groups += group_runs([c for c in todo if c not in in_checkpoints])
  if todo:
    print(
      f"[{label}] training {len(todo)} of {len(mine)} runs ({len(mine) - len(todo)}"
      f" already finished) in {len(groups)} compiled program(s)"
      + (f", shard {shard[0]}/{shard[1]}" if shard else "")
    )
  return dict(
    todo=len(todo), total=len(mine), groups=[[c.fingerprint() for c in g] for g in groups]
  )


def _resumable_groups(
  out: pathlib.Path, by_fingerprint: dict[str, TrainConfig], todo: list[TrainConfig]
) -> list[list[TrainConfig]]:
  """Programs with a checkpoint under OUT whose runs all belong to this command."""
  groups, taken = [], set()
  for meta_path in sorted((out / CHECKPOINTS_DIR).glob(f"*/{checkpoints.META_FILE}")):
    try:
      fingerprints = records.read_json(meta_path, checkpoints.RESTART_HINT).get("runs", [])
    except records.DamagedFileError as err:
      refuse_damaged(err)
    group = [by_fingerprint.get(f) for f in fingerprints]
    if group and all(group) and not taken & set(group) and set(group) & set(todo):
      groups.append(group)
      taken |= set(group)
  return groups
