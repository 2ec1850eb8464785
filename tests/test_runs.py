"""Trustworthy runs: never mixed, never lost, refused before work starts.

Each test here failed on the first version of the commands: reused
directories mislabelled runs, bad values trained something else, SIGTERM lost
the work, damaged files gave tracebacks.
"""

import csv
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from experiments import reproduce, sweep
from experiments import train as train_cli
from htsgd_jax import checkpoints, records
from htsgd_jax.training import Trainer

ROOT = pathlib.Path(__file__).resolve().parents[1]
DIGITS = [
  "--dataset",
  "digits",
  "--lr",
  "0.1",
  "--batch-size",
  "100",
  "--eval-every",
  "10",
  "--no-progress",
]
SMALL_SWEEP = DIGITS + [
  "--widths",
  "16",
  "--seeds",
  "1",
  "2",
  "--sigmas",
  "0",
  "0.05",
  "--noise-types",
  "2",
  "--max-steps",
  "20",
  "--target-accuracy",
  "none",
]


def _rows(out):
  with open(out / "runs.csv") as f:
    return list(csv.DictReader(f))


def _refused(main, argv, match):
  with pytest.raises(SystemExit, match=match) as refused:
    main(argv)
  assert refused.value.code == 2


def _no_training(monkeypatch):
  monkeypatch.setattr(Trainer, "run", lambda *a, **k: pytest.fail("trained before refusing"))


# ------------------------------------------------------------- run identity
def test_same_directory_other_lr_trains_beside_and_labels_agree(tmp_path):
  assert sweep.main(SMALL_SWEEP + ["--out", str(tmp_path)]) == 0
  other = [a if a != "0.1" else "0.05" for a in SMALL_SWEEP]
  other[other.index("--batch-size") + 1] = "50"
  assert sweep.main(other + ["--out", str(tmp_path)]) == 0
  rows = _rows(tmp_path)
  assert len(rows) == 4  # this command's runs only
  for row in rows:
    config = records.read_record(row["run_dir"])["config"]
    assert (float(row["lr"]), int(row["batch_size"])) == (0.05, 50)
    assert (config["lr"], config["batch_size"]) == (0.05, 50)
  assert len([p for p in tmp_path.iterdir() if records.is_finished(p)]) == 8


def test_record_of_another_config_in_a_run_directory_is_refused(tmp_path):
  assert sweep.main(SMALL_SWEEP + ["--out", str(tmp_path)]) == 0
  run = next(p for p in tmp_path.iterdir() if records.is_finished(p))
  record = records.read_record(run)
  record["config"]["max_steps"] = 999  # a foreign record (copied here), sealed as written
  records.write_json(run / records.RECORD_FILE, records.sealed(record))
  _refused(
    sweep.main,
    SMALL_SWEEP + ["--out", str(tmp_path)],
    rf"{run.name} holds a run of another config \(max_steps: 999 -> 20\)",
  )


def test_reproduce_refuses_a_sweep_directory(tmp_path, monkeypatch):
  assert sweep.main(SMALL_SWEEP + ["--out", str(tmp_path)]) == 0
  _no_training(monkeypatch)
  _refused(
    reproduce.main,
    ["--preset", "ecg5000_fcn:quick", "--out", str(tmp_path)],
    "holds the runs and reports of experiments.sweep",
  )


# ------------------------------------------------------- refused before work
@pytest.mark.parametrize(
  "flags, message",
  [
    (["--sigmas", "-1"], "--sigmas must be finite and >= 0; got -1.0"),
    (["--sigmas", "nan"], "--sigmas must be finite and >= 0; got nan"),
    (["--alphas", "2.5"], r"--alphas must lie in \(0.0, 2.0\]"),
    (["--noise-types", "4"], "--noise-types must be 0"),
    (["--widths", "0"], "--widths must be >= 1"),
    (["--seeds", "1", "1"], "--seeds repeats a seed"),
    (["--prune-fraction", "2"], r"--prune-fraction must lie in \[0, 1\]; got 2.0"),
    (["--checkpoint-every-s", "-1"], "--checkpoint-every-s must be >= 0"),
    (["--batch-size", "5000"], "batch_size 5000 exceeds the 1297 training examples"),
  ],
)
def test_sweep_refuses_bad_values_before_training(tmp_path, monkeypatch, flags, message):
  _no_training(monkeypatch)
  _refused(sweep.main, SMALL_SWEEP + flags + ["--out", str(tmp_path)], message)


def test_unwritable_out_is_refused_before_training(tmp_path, monkeypatch):
  _no_training(monkeypatch)
  blocker = tmp_path / "a_file"
  blocker.write_text("")
  for main, argv in ((train_cli.main, DIGITS), (sweep.main, SMALL_SWEEP)):
    _refused(main, argv + ["--out", str(blocker / "out")], "cannot write to .*choose another --out")


def test_tfds_dataset_without_data_is_the_documented_one_line_message(tmp_path, monkeypatch):
  _no_training(monkeypatch)
  _refused(
    train_cli.main,
    ["--dataset", "cifar10", "--data-dir", str(tmp_path / "tfds"), "--out", str(tmp_path / "run")],
    "not prepared in array_record format under .*tfds build cifar10",
  )


def test_target_accuracy_none_is_accepted(tmp_path):
  out = tmp_path / "run"
  assert (
    train_cli.main(
      DIGITS
      + ["--width", "16", "--max-steps", "20", "--target-accuracy", "none", "--out", str(out)]
    )
    == 0
  )
  record = records.read_record(out)
  assert record["config"]["target_accuracy"] is None and record["status"] == "max_steps"


# ------------------------------------------------------------ damaged files
@pytest.mark.parametrize("victim", [records.RECORD_FILE, records.PARAMS_FILE])
def test_damaged_run_files_are_named_with_the_way_out(tmp_path, victim):
  argv = SMALL_SWEEP + ["--out", str(tmp_path)]
  assert sweep.main(argv) == 0
  run = next(p for p in tmp_path.iterdir() if records.is_finished(p))
  (run / "analysis.json").unlink()  # so that the parameters are read again
  path = run / victim
  path.write_bytes(path.read_bytes()[:40])  # truncated
  _refused(sweep.main, argv, rf"{path} is damaged .*pass --force to retrain")
  assert sweep.main(argv + ["--force"]) == 0  # the way out works
  assert records.is_finished(run)


def test_damaged_analysis_cache_is_recomputed(tmp_path, capsys):
  argv = SMALL_SWEEP + ["--out", str(tmp_path)]
  assert sweep.main(argv) == 0
  cache = next(tmp_path.glob("*/analysis.json"))
  cache.write_text('{"fraction_pru')
  assert sweep.main(argv) == 0
  assert f"{cache} is damaged; recomputing it" in capsys.readouterr().out
  assert records.read_json(cache)["fraction_pruned"] >= 0


def test_run_files_are_readable_like_other_outputs(tmp_path):
  assert sweep.main(SMALL_SWEEP + ["--out", str(tmp_path)]) == 0
  for path in tmp_path.glob("*/*.*"):
    assert path.stat().st_mode & 0o644 == 0o644, path


def test_wall_time_is_each_runs_own(tmp_path):
  # One program, two runs: the noisy one diverges at its first evaluation,
  # the plain one trains to step 400.
  argv = DIGITS + [
    "--widths",
    "16",
    "--seeds",
    "1",
    "--sigmas",
    "0",
    "1e30",
    "--noise-types",
    "2",
    "--max-steps",
    "400",
    "--target-accuracy",
    "none",
    "--out",
    str(tmp_path),
  ]
  assert sweep.main(argv) == 0
  rows = {r["status"]: r for r in _rows(tmp_path)}
  assert int(rows["diverged"]["steps"]) < 400 == int(rows["max_steps"]["steps"])
  # (Both include the compilation; the old records gave both the batch's total.)
  assert float(rows["diverged"]["wall_time_s"]) < float(rows["max_steps"]["wall_time_s"])


# --------------------------------------------------- SIGTERM, checkpoints
def _start(module, argv):
  env = dict(os.environ, PYTHONUNBUFFERED="1")
  return subprocess.Popen(
    [sys.executable, "-m", module, *argv],
    cwd=ROOT,
    env=env,
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
  )


def _terminate_after_first_checkpoint(proc, pattern_dir: pathlib.Path, glob: str):
  deadline = time.time() + 120
  while not list(pattern_dir.glob(glob)):
    assert proc.poll() is None, proc.communicate()[0]
    assert time.time() < deadline, "no checkpoint appeared"
    time.sleep(0.05)
  proc.send_signal(signal.SIGTERM)
  output = proc.communicate(timeout=120)[0]
  return proc.returncode, output


def _params(run_dir):
  return records.flatten_params(records.read_params(run_dir))


def test_sigterm_checkpoints_and_the_rerun_ends_bit_identical(tmp_path):
  argv = DIGITS + [
    "--width",
    "32",
    "--noise-type",
    "2",
    "--sigma",
    "0.05",
    "--max-steps",
    "3000",
    "--target-accuracy",
    "none",
  ]
  out = tmp_path / "stopped"
  proc = _start("experiments.train", argv + ["--out", str(out), "--checkpoint-every-s", "0"])
  code, output = _terminate_after_first_checkpoint(proc, out, "checkpoint/checkpoint.json")
  assert code == 128 + signal.SIGTERM, output
  record = records.read_record(out)
  assert record["status"] == "interrupted" and 0 < record["steps"] < 3000
  assert record["history"]["step"][-1] == record["steps"]  # steps agree with history
  assert (out / "checkpoint" / checkpoints.META_FILE).is_file()
  # Rerunning the same command resumes and finishes.
  resumed = _start("experiments.train", argv + ["--out", str(out)])
  output = resumed.communicate(timeout=300)[0]
  assert resumed.returncode == 0, output
  assert f"from their checkpoint at step {record['steps']}" in output
  assert records.read_record(out)["status"] == "max_steps"
  assert not (out / "checkpoint").exists()
  # The same as a run never stopped, bit for bit.
  assert train_cli.main(argv + ["--out", str(tmp_path / "straight")]) == 0
  stopped, straight = _params(out), _params(tmp_path / "straight")
  assert stopped.keys() == straight.keys()
  for name in stopped:
    np.testing.assert_array_equal(stopped[name], straight[name], err_msg=name)
  history = records.read_record(out)["history"]
  assert history == records.read_record(tmp_path / "straight")["history"]


def test_sweep_resumes_its_program_in_flight_bit_identical(tmp_path):
  argv = DIGITS + [
    "--widths",
    "16",
    "--seeds",
    "1",
    "2",
    "--sigmas",
    "0",
    "0.05",
    "--noise-types",
    "2",
    "--max-steps",
    "2000",
    "--target-accuracy",
    "none",
  ]
  out = tmp_path / "stopped"
  proc = _start("experiments.sweep", argv + ["--out", str(out), "--checkpoint-every-s", "0"])
  code, output = _terminate_after_first_checkpoint(proc, out, ".checkpoints/*/checkpoint.json")
  assert code == 128 + signal.SIGTERM, output
  assert {
    records.read_record(p)["status"] for p in out.iterdir() if (p / "record.json").exists()
  } == {"interrupted"}
  resumed = _start("experiments.sweep", argv + ["--out", str(out)])
  output = resumed.communicate(timeout=300)[0]
  assert resumed.returncode == 0, output
  assert "from their checkpoint" in output
  assert sweep.main(argv + ["--out", str(tmp_path / "straight")]) == 0
  for row, twin in zip(_rows(out), _rows(tmp_path / "straight")):
    assert row["status"] == twin["status"] == "max_steps"
    a, b = _params(row["run_dir"]), _params(twin["run_dir"])
    for name in a:
      np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_missing_tfds_data_prints_no_tfds_warnings_before_the_message(tmp_path, caplog):
  from htsgd_jax import data

  with pytest.raises(FileNotFoundError, match="not prepared"):
    data.load_dataset("cifar10", data_dir=str(tmp_path / "tfds"))
  assert [r.getMessage() for r in caplog.records if r.name == "absl"] == []
