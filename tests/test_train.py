"""The ``experiments.train`` command: one run, its record, its refusals, its printed summary."""

import json

import pytest

from experiments import train as train_cli
from htsgd_jax import records

SMALL = [
  "--dataset", "digits", "--width", "32", "--lr", "0.1", "--batch-size", "100",
  "--max-steps", "20", "--eval-every", "10", "--no-progress",
]  # fmt: skip


def test_train_cli_writes_a_record_and_keeps_finished_runs(tmp_path, capsys):
  out = tmp_path / "run"
  noisy = SMALL + ["--noise-type", "3", "--sigma", "0.01", "--out", str(out)]
  assert train_cli.main(noisy) == 0
  record = records.read_record(out)
  assert record["config"]["noise_type"] == 3 and record["status"] in records.FINISHED
  assert json.loads(capsys.readouterr().out)["out"] == str(out)
  assert train_cli.main(noisy) == 0
  assert "already holds this run, finished" in capsys.readouterr().out
  # Another config in the same OUT is refused, saying what differs.
  with pytest.raises(
    SystemExit, match=r"holds a run of another config \(.*noise_type: 3 -> 0"
  ) as refused:
    train_cli.main(SMALL + ["--out", str(out)])
  assert refused.value.code == 2


@pytest.mark.parametrize(
  "flags, message",
  [
    (["--alpha", "0"], "alpha must lie in"),
    (["--sigma", "-0.5"], "sigma must be finite"),
    (["--dataset", "imagenet"], "unknown dataset"),
    (["--batch-size", "100000"], "exceeds the 1297 training examples"),
  ],
)
def test_train_cli_bad_input_exits_with_the_reason(tmp_path, flags, message):
  with pytest.raises(SystemExit, match=message):
    train_cli.main(SMALL + flags + ["--out", str(tmp_path / "x")])


def test_train_prints_json_without_bare_nan(tmp_path, capsys):
  from experiments import train as train_cli

  argv = ["--dataset", "digits", "--lr", "1e30", "--max-steps", "20", "--eval-every", "10"]
  assert train_cli.main(argv + ["--no-progress", "--out", str(tmp_path / "r")]) == 0
  printed = capsys.readouterr().out
  summary = json.loads(printed[printed.index("{") :])  # strict JSON: no NaN, no Infinity
  assert summary["status"] == "diverged"
  json.dumps(summary, allow_nan=False)
