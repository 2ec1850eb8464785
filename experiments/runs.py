"""A run as every command names it: :class:`RunSpec`, and once trained, :class:`FinishedRun`.

Each command makes its runs' specs once (``Experiment.runs``,
``sweep.grid_runs``, ``compare_protocol.Plan``) and passes them whole through
training (:func:`experiments.pipeline.train_missing`), analysis, tuning,
comparison and reports. Imports neither JAX nor Flax, so that a command's
``--help`` never waits for them.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

from htsgd_jax.config import TrainConfig


@dataclasses.dataclass(frozen=True)
class RunSpec:
  """One run: its name, what it stands for in the reports, and its config.

  Attributes:
    name: readable name, the first part of its directory (``noisy_n5000_seed1``).
    label: what the reports group it under: its arm (``plain``, ``noisy``),
      its method (``type1``, ``group_lasso``) or a sweep's arm label.
    config: what it trains.
    strength: its method's σ or λ (0 for plain SGD and for a preset's arms).

  Example:
    >>> spec = RunSpec("noisy_n10_seed1", "noisy", TrainConfig(width=10, seed=1))
    >>> spec.seed, spec.directory(pathlib.Path("out")).name[:16]
    (1, 'noisy_n10_seed1-')
  """

  name: str
  label: str
  config: TrainConfig
  strength: float = 0.0

  @property
  def seed(self) -> int:
    return self.config.seed

  def directory(self, out: pathlib.Path) -> pathlib.Path:
    """Where it lives under ``out``: its name, then its config's fingerprint.

    The fingerprint hashes every field that changes the result, so a
    directory belongs to exactly one config.
    """
    return out / f"{self.name}-{self.config.fingerprint()}"


@dataclasses.dataclass(frozen=True)
class FinishedRun:
  """A run that ended by itself: its sealed record, and what is known of its results.

  Attributes:
    spec: the run.
    record: its sealed ``record.json`` (status, steps, history, final accuracies).
    params: its parameters, or None where they are not loaded (or were removed).
    analysis: its compression analysis (``analysis.json``), once made; None
      before, and for a diverged run.
  """

  spec: RunSpec
  record: dict
  params: Any
  analysis: dict | None = None

  @property
  def method(self) -> str:
    return self.spec.label

  @property
  def strength(self) -> float:
    return self.spec.strength

  @property
  def seed(self) -> int:
    return self.spec.seed

  @property
  def config(self) -> TrainConfig:
    return self.spec.config


@dataclasses.dataclass(frozen=True)
class RunOptions:
  """How a command trains its runs; every training command's ``--force``,
  ``--checkpoint-every-s`` and ``--no-progress`` (:func:`experiments.cli.add_run_flags`).

  Example:
    >>> RunOptions(checkpoint_every_s=-1)
    Traceback (most recent call last):
    ...
    ValueError: --checkpoint-every-s must be >= 0; got -1.
  """

  force: bool = dataclasses.field(
    default=False, metadata=dict(help="retrain every run, replacing its files")
  )
  checkpoint_every_s: float = dataclasses.field(
    default=300.0,
    metadata=dict(
      help="seconds between checkpoints of the training state (also written on SIGINT/SIGTERM;"
      " rerunning the command resumes)"
    ),
  )
  progress: bool = dataclasses.field(default=True, metadata=dict(help="progress bars"))

  def __post_init__(self):
    if not self.checkpoint_every_s >= 0:
      raise ValueError(f"--checkpoint-every-s must be >= 0; got {self.checkpoint_every_s}.")
