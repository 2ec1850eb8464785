"""Choosing a method's strength (σ, λ) on a validation split, shared by compare and sweep --tune.

The criterion is the question users ask: which strength gives the smallest
network at the accuracy they need? Every strength is trained on the
training set minus a held-out split (``TrainConfig.validation``); on that
split, each network's most removable hidden units (smallest norms first,
:func:`htsgd_jax.search_prunable`) with accuracy within Δ of plain SGD's
(same seed, unpruned) is its score; the strength with the best mean score
over seeds wins, ties going to the weaker strength. The test set is not
looked at.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections import defaultdict
from collections.abc import Mapping

import numpy as np

from experiments import analysis, pipeline
from experiments.cli import usage_error
from experiments.files import write_text
from experiments.methods import METHODS, strength_label
from experiments.runs import FinishedRun, RunOptions, RunSpec
from htsgd_jax import compression, records
from htsgd_jax.config import TrainConfig
from htsgd_jax.data import Dataset


def train_and_load(
  runs: list[RunSpec],
  dataset: Dataset,
  out: pathlib.Path,
  label: str,
  options: RunOptions,
) -> tuple[list[FinishedRun], str | None]:
  """Trains what is missing (resumable, see :mod:`experiments.pipeline`); loads what finished.

  Returns the finished runs and the name of the signal that stopped the
  training, if one did.
  """
  trained = pipeline.train_missing(runs, dataset, out, label, options)
  return load_finished(runs, out, trained.finished), trained.stop_signal


def load_finished(
  runs: list[RunSpec], out: pathlib.Path, in_memory: Mapping[TrainConfig, FinishedRun] = {}
) -> list[FinishedRun]:
  """The finished ones of ``runs`` under ``out``, with their parameters.

  Those ``in_memory`` (just trained by this process) are taken as they are;
  the others are read, their parameters checked against their records.
  """
  done = []
  for spec in runs:
    if spec.config in in_memory:
      done.append(dataclasses.replace(in_memory[spec.config], spec=spec))
      continue
    path = spec.directory(out)
    record = pipeline.read_checked_record(path, spec.config)
    if records.is_finished(path, record):
      done.append(FinishedRun(spec, record, analysis.read_params_or_exit(path, record)))
  return done


def search(trained: list[FinishedRun], dataset: Dataset, delta: float, own: bool):
  """:func:`htsgd_jax.search_prunable` on ``dataset``'s test split for every run.

  Targets: plain SGD's accuracy (same seed) − Δ, and with ``own`` also the
  run's own accuracy − Δ. Returns (search, unpruned accuracy, plain accuracy).
  """
  cfg = trained[0].config
  missing = sorted({t.seed for t in trained} - {t.seed for t in trained if t.method == "plain"})
  if missing:
    usage_error(f"plain SGD has no finished run for seed(s) {missing}: rerun the command.")

  def reference(accuracy):  # plain SGD's unpruned accuracy, same seed, for every run
    plain = {t.seed: a for t, a in zip(trained, accuracy) if t.method == "plain"}
    return np.asarray([plain[t.seed] for t in trained])

  def targets(accuracy):  # from the unpruned accuracies the search measures first
    return np.stack([reference(accuracy) - delta] + ([accuracy - delta] if own else []), axis=1)

  found = compression.search_prunable(
    analysis.apply_fn(cfg, dataset.num_classes),
    [t.params for t in trained],
    dataset.x_test,
    dataset.y_test,
    targets,
    conv_column=cfg.conv_column,
    eval_batch_size=cfg.eval_batch_size,
  )
  accuracy = found.curve[:, 0]
  return found, accuracy, reference(accuracy)


def _order(method: str) -> tuple:
  return (METHODS.index(method) if method in METHODS else len(METHODS), method)


def choose(tuned: list[FinishedRun], validation: Dataset, delta: float) -> tuple[dict, str]:
  """Per method, the strength whose networks lose the most units within Δ on validation.

  Args:
    tuned: finished runs on ``validation``'s training part, plain SGD for every seed among them.
    validation: the dataset whose test split is the held-out validation split.
    delta: accuracy points a smaller network may lose against plain SGD.

  Returns:
    ``({method: strength}, a markdown table of every strength's score)``.
  """
  found, accuracy, _ = search(tuned, validation, delta, own=False)
  removed = np.maximum(found.units[:, 0], 0) / found.n_units
  scores, accuracies = defaultdict(list), defaultdict(list)
  for t, r, a in zip(tuned, removed, accuracy):
    scores[(t.method, t.strength)].append(r)
    accuracies[(t.method, t.strength)].append(a)
  best: dict[str, tuple[float, float]] = {}
  keys = sorted(scores, key=lambda k: (_order(k[0]), k[1]))
  for key in keys:  # strengths ascending: a tie keeps the weaker one
    score = float(np.mean(scores[key]))
    if key[0] not in best or score > best[key[0]][1] + 1e-12:
      best[key[0]] = (key[1], score)
  lines = [
    f"Validation split ({len(validation.y_test)} held-out training examples): the most hidden"
    f" units removable (smallest norms first) with validation accuracy within {delta:g}"
    f" point(s) of plain SGD's (same seed), mean over seeds.\n",
    "| method | strength | runs | val. acc. (unpruned) | units removable (%) | chosen |",
    "|---|---|---|---|---|---|",
  ]
  for method, strength in keys:
    lines.append(
      f"| {method} | {strength_label(method, strength)} | {len(scores[(method, strength)])}"
      f" | {np.mean(accuracies[(method, strength)]):.2f}"
      f" | {100 * np.mean(scores[(method, strength)]):.1f}"
      f" | {'✓' if best[method][0] == strength else ''} |"
    )
  for method, (strength, _) in best.items():
    grid = sorted(st for m, st in keys if m == method)
    if len(grid) > 1 and strength in (grid[0], grid[-1]):
      side = "lowest" if strength == grid[0] else "highest"
      lines.append(
        f"\nnote: {method}'s choice is the {side} strength of its grid: the best may lie"
        " beyond it; widen the grid to know."
      )
  return {m: s for m, (s, _) in best.items()}, "\n".join(lines) + "\n"


def report(
  runs, validation, out, delta: float, stop_signal: str | None, in_memory: Mapping = {}
) -> int:
  """``sweep --tune sigma``: the chosen σ per width, noise type and α; tuning.md and tuning.json."""
  if stop_signal:  # a choice from part of the grid would be mislabelled as the grid's
    return pipeline.stopped(stop_signal)
  sections, chosen = [], {}
  for width in sorted({spec.config.width for spec in runs}):
    entries = [  # every σ of a noise type and α under one label, to choose among them
      dataclasses.replace(
        spec,
        label=f"type{cfg.noise_type} α={cfg.alpha:g}" if cfg.noisy else "plain",
        strength=cfg.sigma,
      )
      for spec in runs
      if (cfg := spec.config).width == width
    ]
    trained = load_finished(entries, out, in_memory)
    if not trained:
      continue
    best, table = choose(trained, validation, delta)
    chosen[width] = {m: s for m, s in best.items() if m != "plain"}
    sections.append(f"## width {width}\n\n{table}")
  if sections:
    text = "\n".join(sections)
    write_text(out / "tuning.md", text)
    records.write_json(out / "tuning.json", dict(delta=delta, sigma=chosen))
    print(f"\n{text}\nchosen σ: {chosen}\nwritten to {out}/ (tuning.md, tuning.json)")
  else:
    print("no finished runs yet.")
  return 0
