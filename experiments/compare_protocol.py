"""The equal-accuracy comparison at one width: tune, train, search, measure, report.

:mod:`experiments.compare` (its flags and its docstring describe the
protocol) runs it at the preset's width or at several (``--widths``), then
reports across widths.
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from experiments import compare_report, sensitivity, smallest, tuning
from experiments.cli import usage_error
from experiments.files import write_csv, write_text
from experiments.methods import method_config, strength_grid
from experiments.presets import Experiment
from experiments.runs import FinishedRun, RunOptions, RunSpec
from experiments.settings import CompareConfig
from htsgd_jax import records
from htsgd_jax.compression import ACCURACY_TOLERANCE
from htsgd_jax.data import Dataset


@dataclasses.dataclass(frozen=True)
class Plan:
  """One width's runs: every method's tuning grid, then the evaluation seeds.

  Attributes:
    exp: the preset's experiment, at this width.
    settings: the command's settings, its seeds and widths resolved.
  """

  exp: Experiment
  settings: CompareConfig

  def tuning_runs(self) -> list[RunSpec]:
    """Every method's tuning runs, each strength and tuning seed, on the validation split."""
    return [
      self.spec(m, s, seed, validation=self.settings.validation)
      for m in self.settings.all_methods
      for s in strength_grid(self.exp, m)
      for seed in self.settings.tuning_seeds
    ]

  def final_runs(self, chosen: dict[str, float]) -> list[RunSpec]:
    """Every method's runs at its chosen strength, each evaluation seed."""
    return [
      self.spec(m, chosen[m], seed)
      for m in self.settings.all_methods
      for seed in self.settings.seeds
    ]

  def spec(self, method: str, strength: float, seed: int, **config) -> RunSpec:
    """``method`` at ``strength`` with ``seed`` (and other config fields), named for them."""
    cfg = method_config(self.exp, method, strength, self.settings.budget)
    return RunSpec(
      f"{method}_{strength:g}_seed{seed}",
      method,
      dataclasses.replace(cfg, seed=seed, **config),
      strength,
    )


def run(
  plan: Plan,
  options: RunOptions,
  validation_data: Dataset,
  dataset: Dataset,
  out: pathlib.Path,
) -> tuple[list[dict] | None, str | None]:
  """Tunes, trains, searches and measures; writes this width's reports in ``out``.

  Returns the rows (one per run; None if a signal stopped the training) and
  the signal's name, if one did.
  """
  chosen, stop = tune(plan, options, validation_data, out)
  if stop:
    return None, stop
  name, settings = plan.exp.name, plan.settings
  print(
    f"[{name}] 2. every method at its strength, seeds {list(settings.seeds)}, whole training set"
  )
  trained, stop = tuning.train_and_load(
    plan.final_runs(chosen), dataset, out / "runs", name, options
  )
  if stop:
    return None, stop
  rows, curves = measure(plan, trained, dataset)
  write_reports(plan, rows, curves, chosen, len(dataset.y_test), out)
  return rows, None


def tune(
  plan: Plan, options: RunOptions, validation_data: Dataset, out: pathlib.Path
) -> tuple[dict[str, float], str | None]:
  """Step 1: every method's strength, chosen on the validation split (``tuning.md``)."""
  print(
    f"[{plan.exp.name}] 1. tuning {len(plan.settings.all_methods) - 1} methods on a validation"
    f" split ({plan.settings.validation:g} of the training set)"
  )
  tuning_runs = plan.tuning_runs()
  tuned, stop = tuning.train_and_load(
    tuning_runs, validation_data, out / "tuning", "tuning", options
  )
  if stop:
    return {}, stop
  if len(tuned) < len(tuning_runs):
    usage_error("some tuning runs are unfinished; rerun the same command.")
  chosen, tuning_md = tuning.choose(tuned, validation_data, plan.settings.delta)
  write_text(out / "tuning.md", tuning_md)
  print(tuning_md)
  return chosen, None


def measure(plan: Plan, trained: list[FinishedRun], dataset: Dataset) -> tuple[list[dict], list]:
  """Steps 3 and 4: each network's smallest version, fine-tuned if asked, and its robustness.

  Returns one row per run and the accuracy-vs-size curves.
  """
  name, settings = plan.exp.name, plan.settings
  print(f"[{name}] 3. searching each network's smallest version on the test set")
  rows, curves, smallest_params = smallest.evaluate_methods(
    trained, dataset, settings.delta, settings.timing_repeats
  )
  if settings.fine_tune_steps:
    steps = settings.fine_tune_steps
    print(f"[{name}] 3b. fine-tuning every smallest network: {steps} steps of plain SGD")
    for row, tuned in zip(rows, smallest.fine_tuned(trained, smallest_params, dataset, steps)):
      accuracy = tuned["fine_tuned_test_accuracy"]
      reached = accuracy is not None and accuracy >= row["target_accuracy"] - ACCURACY_TOLERANCE
      row.update(tuned, fine_tune_steps=steps, fine_tuned_reached_target=reached)
  print(f"[{name}] 4. robustness, generalisation gap and spectra, full and smallest networks")
  for row, more in zip(
    rows,
    sensitivity.measure(trained, smallest_params, dataset, settings.eps, settings.robust_examples),
  ):
    row.update(more)
  for row in rows:
    row["width"] = plan.exp.noisy.width
  return rows, curves


def write_reports(
  plan: Plan, rows: list[dict], curves: list, chosen: dict, test_examples: int, out: pathlib.Path
) -> None:
  """compare.md, compare.csv, curves.csv, pareto.png, robustness.md and .png, chosen.json."""
  settings = plan.settings
  write_csv(out / "compare.csv", rows)
  write_csv(out / "curves.csv", [point for c in curves for point in c["points"]])
  compare_report.pareto_plot(
    rows,
    curves,
    float(np.mean([r["target_accuracy"] for r in rows])) + settings.delta,  # plain SGD's
    settings.delta,
    out / "pareto.png",
  )
  table = compare_report.compare_table(rows, settings.delta)
  write_text(out / "compare.md", table)
  examples = min(settings.robust_examples, test_examples)
  robust_table = compare_report.robustness_table(
    rows, settings.eps, examples, sensitivity.PGD_STEPS
  )
  write_text(out / "robustness.md", robust_table)
  compare_report.robustness_plot(rows, settings.eps, out / "robustness.png")
  records.write_json(out / "chosen.json", dict(delta=settings.delta, strengths=chosen))
  print(
    f"\n{table}\n{robust_table}\nwritten to {out}/ (compare.md, compare.csv, curves.csv,"
    " pareto.png, robustness.md, robustness.png, tuning.md)"
  )
