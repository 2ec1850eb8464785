"""A finished run is its small files: record.json and analysis.json, without params.

The repository keeps long runs (the authors' MNIST setting) as these files
alone, since params are too large to commit. These tests guard that such a
run is reported and never retrained, that a damaged or edited analysis is
refused (nothing can recompute it), and that one job trains one run.
"""

import dataclasses
import json
import pathlib

import pytest

from experiments import reproduce
from experiments.presets import Experiment
from htsgd_jax import records
from htsgd_jax.config import TrainConfig
from htsgd_jax.training import Trainer

TINY = Experiment(
  "digits_tiny",
  TrainConfig(
    dataset="digits",
    width=16,
    lr=0.1,
    batch_size=100,
    noise_type=2,
    sigma=0.05,
    max_steps=20,
    eval_every=10,
    target_accuracy=None,
    converge_on="before_noise",
  ),
  seeds=(1, 2),
  run_table=True,
)


@pytest.fixture
def tiny(monkeypatch):
  monkeypatch.setattr(reproduce, "get_experiments", lambda preset: [TINY])


def _reproduce(out, *flags):
  return reproduce.main(["--preset", "tiny", "--out", str(out), "--no-progress", *flags])


def _runs(out):
  return sorted(p for p in (out / TINY.name).iterdir() if p.is_dir() and not p.name.startswith("."))


def _no_training(monkeypatch):
  monkeypatch.setattr(Trainer, "run", lambda *a, **k: pytest.fail("retrained a finished run"))


def _drop_params(out):
  for run in _runs(out):
    (run / records.PARAMS_FILE).unlink()


def test_one_job_trains_one_run_and_reports_every_finished_one(tiny, tmp_path):
  assert _reproduce(tmp_path, "--arms", "noisy", "--seeds", "2") == 0
  assert [p.name.rsplit("-", 1)[0] for p in _runs(tmp_path)] == ["noisy_n16_seed2"]
  assert _reproduce(tmp_path, "--arms", "plain") == 0
  names = [p.name.rsplit("-", 1)[0] for p in _runs(tmp_path)]
  assert names == ["noisy_n16_seed2", "plain_n16_seed1", "plain_n16_seed2"]
  table = (tmp_path / "table.md").read_text()
  assert "| digits_tiny | 16 | plain | 2 |" in table and "| digits_tiny | 16 | noisy | 1 |" in table
  assert "| digits_tiny | noisy | 2 | max_steps | 20 (cap) |" in table  # the run table


def test_runs_without_params_are_reported_identically_and_never_retrained(
  tiny, tmp_path, monkeypatch, capsys
):
  assert _reproduce(tmp_path) == 0
  table = (tmp_path / "table.md").read_text()
  plots = {p: (tmp_path / p).read_bytes() for p in ("pruning_curves.png", "training_curves.png")}
  _drop_params(tmp_path)
  _no_training(monkeypatch)
  (tmp_path / "table.md").unlink()
  assert _reproduce(tmp_path, "--report-only") == 0
  assert (tmp_path / "table.md").read_text() == table
  assert all((tmp_path / p).is_file() for p in plots)
  assert (
    "4 of 4 runs reported from their sealed record and analysis alone" in capsys.readouterr().out
  )
  assert _reproduce(tmp_path) == 0  # training: nothing to retrain
  assert (tmp_path / "table.md").read_text() == table
  rows = (tmp_path / "runs.csv").read_text().splitlines()
  assert all(",absent," in row for row in rows[1:])


@pytest.mark.parametrize("edit", ["damaged", "edited", "foreign"])
def test_a_bad_analysis_without_params_is_refused_naming_it(tiny, tmp_path, monkeypatch, edit):
  assert _reproduce(tmp_path) == 0
  _drop_params(tmp_path)
  victim = _runs(tmp_path)[0] / "analysis.json"
  analysis = json.loads(victim.read_text())
  if edit == "damaged":
    victim.write_text(victim.read_text()[:50])
  elif edit == "edited":
    analysis["fraction_pruned"] = 0.99
    victim.write_text(json.dumps(analysis))
  else:  # sealed, but computed from other parameters than the record's
    analysis[records.PARAMS_CHECKSUM_KEY] = "0" * 64
    records.write_json(victim, records.sealed(analysis))
  _no_training(monkeypatch)
  for flags in ([], ["--report-only"]):  # refused before training, and in the reports
    with pytest.raises(SystemExit, match=f"{victim}.*no params.npz to recompute it") as refused:
      _reproduce(tmp_path, *flags)
    assert refused.value.code == 2


def test_a_run_with_neither_params_nor_analysis_is_named_then_retrained(
  tiny, tmp_path, monkeypatch, capsys
):
  assert _reproduce(tmp_path) == 0
  run = _runs(tmp_path)[0]
  (run / records.PARAMS_FILE).unlink()
  (run / "analysis.json").unlink()
  capsys.readouterr()
  assert _reproduce(tmp_path, "--report-only") == 0
  out = capsys.readouterr().out
  assert f"neither params.npz nor analysis.json: {run.name}" in out
  assert "| digits_tiny | 16 | noisy | 1 |" in (tmp_path / "table.md").read_text()
  assert _reproduce(tmp_path) == 0
  assert (run / records.PARAMS_FILE).is_file()
  assert "| digits_tiny | 16 | noisy | 2 |" in (tmp_path / "table.md").read_text()


def test_the_preset_carries_the_published_dtype_and_cap(tmp_path):
  from experiments.presets import get_experiments

  (exp,) = get_experiments("mnist_fcn")
  assert (exp.noisy.compute_dtype, exp.noisy.max_steps, exp.noisy.width) == ("bfloat16", 6000, 5000)
  f32 = exp.with_compute_dtype("float32")
  assert f32.name == "mnist_fcn_float32"
  assert dataclasses.replace(f32.noisy, compute_dtype="bfloat16") == exp.noisy


@pytest.mark.parametrize("preset", ["mnist_fcn", "mnist_vgg:quick"])
def test_committed_runs_rebuild_their_table_without_params(tmp_path, preset):
  """The published runs: their small files alone rebuild table.md byte for byte, no data."""
  import shutil

  from experiments import analysis, report
  from experiments.presets import get_experiments

  (exp,) = get_experiments(preset)
  committed = pathlib.Path(__file__).resolve().parents[1] / "results" / exp.name
  if not (committed / "table.md").is_file():
    pytest.skip(f"no committed results/{exp.name} yet")
  kept = tmp_path / "kept" / exp.name
  for small in (*committed.glob("*/*/record.json"), *committed.glob("*/*/analysis.json")):
    target = kept / small.parent.name / small.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(small, target)
  rows = analysis.analyse(exp.runs(), None, kept, exp.name, exp.prune_fraction)
  assert len(rows) >= 2 and all(r["params"] == "absent" for r in rows)
  report.write_outputs(rows, tmp_path, frozenset([exp.name] if exp.run_table else []))
  assert (tmp_path / "table.md").read_text() == (committed / "table.md").read_text()
