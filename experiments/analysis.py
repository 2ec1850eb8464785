"""Compression analysis of finished runs, cached and checked: one row per run.

Each finished run's parameters are analysed once (:func:`htsgd_jax.analyze`)
and the result cached as ``analysis.json`` beside its record, sealed and tied
to the checksum of the parameters it was computed from. A row holds the
run's config, its status, its training history and, unless it diverged, its
results. Once analysed, a run needs its params no more: its record and
analysis alone are reported (as the repository's results are, whose params
are never committed).
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections import defaultdict
from collections.abc import Mapping, Sequence

from experiments.cli import refuse_damaged, usage_error
from experiments.pipeline import (
  ANALYSIS_FILE,
  is_finished,
  read_checked_record,
  read_kept_analysis,
)
from experiments.runs import FinishedRun, RunSpec
from htsgd_jax import compression, models, records
from htsgd_jax.data import Dataset
from htsgd_jax.training import TrainConfig

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
  "params",
  "run_dir",
)


def analyse(
  runs: Sequence[RunSpec],
  dataset: Dataset,
  out: pathlib.Path,
  label: str,
  prune_fraction: float = 0.1,
  in_memory: Mapping[TrainConfig, FinishedRun] = {},
) -> list[dict]:
  """Compression analysis of every finished run, cached in its directory: one row per run.

  Every run's parameters are checked against its record's checksum, also when
  the analysis is cached; the cache is used only if it was computed from
  those parameters (``params_sha256``) and is itself unedited. Runs
  ``in_memory`` (just trained by this process, :func:`pipeline.train_missing`)
  are analysed from the parameters they hold, not read back. A diverged run
  gets a row without results: it is counted, never averaged.
  """
  done, pending, neither = [], defaultdict(list), []
  for spec in runs:
    path = spec.directory(out)
    record = read_checked_record(path, spec.config)
    if not is_finished(path, record):
      if record and record.get("status") in records.FINISHED:
        neither.append(path.name)
      continue
    trained = in_memory.get(spec.config)
    run = FinishedRun(spec, record, trained.params if trained else None)
    if record["status"] == "diverged":
      done.append(run)
    elif not (path / records.PARAMS_FILE).is_file():
      done.append(dataclasses.replace(run, analysis=_kept_analysis(path, record, prune_fraction)))
    elif (cached := _cached_analysis(path / ANALYSIS_FILE, record, prune_fraction)) is None:
      pending[spec.config.static_key()].append(run)
    else:
      _or_exit(records.verify_params, path, record)
      done.append(dataclasses.replace(run, analysis=cached))
  for same_model in pending.values():
    print(f"[{label}] analysing {len(same_model)} runs of width {same_model[0].config.width}")
    done += _analysed(same_model, dataset, out, prune_fraction)
  if neither:
    print(
      f"[{label}] not reported, {len(neither)} run(s) with neither params.npz nor"
      f" {ANALYSIS_FILE}: {', '.join(neither)}; run the command without --report-only to"
      " retrain them."
    )
  return [row(run, label, out) for run in done]


def _analysed(
  runs: list[FinishedRun], dataset: Dataset, out: pathlib.Path, prune_fraction: float
) -> list[FinishedRun]:
  """Runs of one network shape, analysed together and each analysis sealed beside its record."""
  cfg = runs[0].config
  params = [
    read_params_or_exit(run.spec.directory(out), run.record) if run.params is None else run.params
    for run in runs
  ]
  analyses = compression.analyze(
    apply_fn(cfg, dataset.num_classes),
    params,
    dataset,
    prune_fraction,
    conv_column=cfg.conv_column,
    eval_batch_size=cfg.eval_batch_size,
  )
  done = []
  for run, analysis in zip(runs, analyses):
    analysis["prune_fraction"] = prune_fraction
    analysis[records.PARAMS_CHECKSUM_KEY] = run.record[records.PARAMS_CHECKSUM_KEY]
    records.write_json(run.spec.directory(out) / ANALYSIS_FILE, records.sealed(analysis))
    done.append(dataclasses.replace(run, analysis=analysis))
  return done


def _kept_analysis(path: pathlib.Path, record: dict, prune_fraction: float) -> dict:
  """The sealed analysis of a run whose params were removed; it cannot be recomputed."""
  analysis = read_kept_analysis(path, record)
  if analysis.get("prune_fraction") != prune_fraction:
    usage_error(
      f"{path / ANALYSIS_FILE} prunes {analysis.get('prune_fraction')} of the energy, not"
      f" {prune_fraction}, and its run has no params.npz to analyse again."
    )
  return analysis


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
    refuse_damaged(err)


def read_params_or_exit(run_dir_path: pathlib.Path, record: dict):
  """A finished run's parameters, checked against its record; a damaged file is refused."""
  return _or_exit(records.read_params, run_dir_path, record)


def _cached_analysis(path: pathlib.Path, record: dict, prune_fraction: float) -> dict | None:
  """A run's cached analysis, if computed from the record's parameters at this fraction, unedited.

  A damaged or edited cache is recomputed, with a note; one of other
  parameters (the run was retrained) or of another fraction is recomputed silently.
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
  if analysis.get("prune_fraction") != prune_fraction:
    return None
  return analysis


def row(run: FinishedRun, experiment: str, out: pathlib.Path) -> dict:
  """A finished run's report row: its config, status and history, and its analysis's results.

  A run without analysis (diverged) has no results, only its status.
  """
  cfg, record, analysis, path = run.config, run.record, run.analysis, run.spec.directory(out)
  final = record.get("final", {}) if analysis is not None else {}
  row = dict(
    experiment=experiment,
    arm=run.spec.label,
    model=cfg.model,
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
    params="present" if (path / records.PARAMS_FILE).is_file() else "absent",
    run_dir=str(path),
    target_accuracy=cfg.target_accuracy,
    max_steps=cfg.max_steps,
    eval_every=cfg.eval_every,
    history=record.get("history", {}),
  )
  if analysis is not None:
    row.update({k: analysis.get(k) for k in CSV_FIELDS if k in analysis})
    row["curve"] = analysis["curve"]
    row["column_norms"] = analysis["column_norms"]
  return row


def has_results(row: dict) -> bool:
  """Whether a row's run has results to average (a diverged run has none)."""
  return "curve" in row
