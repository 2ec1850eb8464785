"""The command-line entry points, end to end on small offline data."""

import json

import pytest

from experiments import presets, reproduce
from experiments import train as train_cli
from htsgd_jax import records
from htsgd_jax.train import TrainConfig, Trainer

SMALL = [
  "--dataset",
  "digits",
  "--width",
  "32",
  "--lr",
  "0.1",
  "--batch-size",
  "100",
  "--max-steps",
  "20",
  "--eval-every",
  "10",
  "--no-progress",
]


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


def test_reproduce_writes_outputs_and_reuses_finished_runs(tmp_path, monkeypatch, capsys):
  tiny = presets.Experiment(
    "digits_tiny",
    TrainConfig(
      dataset="digits",
      width=32,
      noise_type=2,
      sigma=0.05,
      lr=0.1,
      batch_size=100,
      target_accuracy=80.0,
      eval_every=10,
      max_steps=100,
    ),
    seeds=(1, 2),
  )
  monkeypatch.setattr(reproduce, "get_experiments", lambda name: [tiny])
  argv = ["--preset", "tiny", "--out", str(tmp_path), "--no-progress"]
  assert reproduce.main(argv) == 0
  for name in ("runs.csv", "table.md", "pruning_curves.png", "column_norms.png"):
    assert (tmp_path / name).is_file()
  table = (tmp_path / "table.md").read_text()
  assert "| digits_tiny | 32 | plain | 2 (" in table and "| digits_tiny | 32 | noisy | 2 (" in table
  assert len((tmp_path / "runs.csv").read_text().strip().splitlines()) == 1 + 4
  trained = []
  monkeypatch.setattr(Trainer, "run", lambda self, *a, **k: trained.append(1))
  assert reproduce.main(argv) == 0
  assert not trained  # everything reused
  assert "digits_tiny" in capsys.readouterr().out


def test_reproduce_lists_presets(capsys):
  assert reproduce.main(["--list"]) == 0
  assert "mnist_fcn" in capsys.readouterr().out
