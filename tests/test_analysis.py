"""experiments.analysis: a run trained in this process is analysed from memory, as from disk."""

import dataclasses

from experiments import analysis, pipeline
from experiments.runs import RunOptions, RunSpec
from htsgd_jax import data, records
from htsgd_jax.config import TrainConfig

DIGITS = data.load_dataset("digits")
BASE = TrainConfig(
  dataset="digits", width=24, lr=0.1, batch_size=100, eval_every=10, max_steps=20,
  target_accuracy=None, noise_type=2, alpha=1.75,
)  # fmt: skip
RUNS = [
  RunSpec("plain_seed1", "plain", BASE.without_noise()),
  RunSpec("noisy_seed1", "noisy", dataclasses.replace(BASE, sigma=0.05)),
]


def _strip(rows):
  return [{k: v for k, v in r.items() if k != "history"} for r in rows]


def test_runs_trained_in_this_process_are_analysed_without_reading_their_params(
  tmp_path, monkeypatch
):
  trained = pipeline.train_missing(RUNS, DIGITS, tmp_path, "t", RunOptions(progress=False))
  assert trained.stop_signal is None
  assert set(trained.finished) == {spec.config for spec in RUNS}

  def no_disk(*args):
    raise AssertionError("params.npz was read back")

  with monkeypatch.context() as m:
    m.setattr(records, "read_params", no_disk)
    from_memory = analysis.analyse(RUNS, DIGITS, tmp_path, "t", 0.1, trained.finished)
  for spec in RUNS:
    (spec.directory(tmp_path) / pipeline.ANALYSIS_FILE).unlink()
  from_disk = analysis.analyse(RUNS, DIGITS, tmp_path, "t", 0.1)
  assert _strip(from_memory) == _strip(from_disk)
  assert [r["arm"] for r in from_disk] == ["plain", "noisy"]
  assert all(r["fraction_pruned"] is not None for r in from_disk)


def test_without_the_runs_in_memory_their_params_are_read_and_checked(tmp_path, monkeypatch):
  pipeline.train_missing(RUNS, DIGITS, tmp_path, "t", RunOptions(progress=False))
  read = []
  real = records.read_params
  monkeypatch.setattr(records, "read_params", lambda *a: read.append(a) or real(*a))
  analysis.analyse(RUNS, DIGITS, tmp_path, "t", 0.1)
  assert len(read) == len(RUNS)
