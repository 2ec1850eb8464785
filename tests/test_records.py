"""htsgd_jax.records: sealed, atomic run files, and refusals that name the file and the way out."""

import json

import jax
import numpy as np
import pytest

from htsgd_jax import data, records
from htsgd_jax.config import TrainConfig
from htsgd_jax.driver import train

DIGITS = data.load_dataset("digits")
BASE = dict(dataset="digits", width=64, lr=0.1, batch_size=100, eval_every=10, max_steps=200)


def test_a_damaged_file_is_named_with_a_way_out_that_names_no_commands_flag(tmp_path):
  (tmp_path / records.RECORD_FILE).write_text("{")
  with pytest.raises(records.DamagedFileError) as err:
    records.read_record(tmp_path)
  assert str(err.value).startswith(f"{tmp_path / records.RECORD_FILE} is damaged")
  assert str(err.value).endswith(f"; {records.RETRAIN_HINT}.")
  assert "--" not in records.RETRAIN_HINT  # the library knows no command line
  path, reason = tmp_path / records.RECORD_FILE, err.value.reason
  assert (
    err.value.message("rerun it") == f"{path} is damaged or not a run file ({reason}); rerun it."
  )


def test_a_command_says_how_it_retrains_and_keeps_other_ways_out(capsys):
  from experiments import cli

  with pytest.raises(
    cli.UsageError, match=r"a\.json is damaged .*\(edited\); delete it, or pass --force"
  ):
    cli.refuse_damaged(records.DamagedFileError("a.json", "edited"))
  with pytest.raises(cli.UsageError, match=r"\(edited\); restart it\.$"):
    cli.refuse_damaged(records.DamagedFileError("a.json", "edited", "restart it"))


def test_record_round_trip_is_atomic_and_json(tmp_path):
  r = train(TrainConfig(**(BASE | dict(max_steps=20)), sigma=0.01), DIGITS, progress=False)
  out = tmp_path / "run"
  records.write_run(out, r.record(), r.params)
  assert records.is_finished(out)
  rec = json.loads((out / "record.json").read_text())
  assert rec["config"]["width"] == 64 and rec["status"] == r.status
  assert TrainConfig.from_dict(rec["config"]) == r.config
  loaded = records.read_params(out)
  jax.tree.map(np.testing.assert_array_equal, loaded, r.params)
  assert not list(out.glob("*.tmp"))


def test_interrupted_write_leaves_no_record(tmp_path, monkeypatch):
  def boom(*a, **k):
    raise KeyboardInterrupt

  monkeypatch.setattr(records.np, "savez", boom)
  with pytest.raises(KeyboardInterrupt):
    records.write_run(tmp_path / "run", {"status": "converged"}, {"w": np.ones(2)})
  assert records.read_record(tmp_path / "run") is None
  assert not list((tmp_path / "run").iterdir())


def test_non_finite_metrics_are_written_as_strings(tmp_path):
  records.write_run(tmp_path, {"status": "diverged", "final": {"train_loss": float("nan")}})
  assert records.read_record(tmp_path)["final"]["train_loss"] == "nan"
