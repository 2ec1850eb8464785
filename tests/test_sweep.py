"""The ``experiments.sweep`` command: its grid, resuming after a kill, presets and flags, --tune."""

from test_driver import BATCHED as BASE

from experiments import sweep
from htsgd_jax import data, records
from htsgd_jax.training import TrainConfig, Trainer, group_runs


def test_sweep_grid_compiles_one_program_per_width():
  runs = sweep.grid_runs(BASE, [16, 32, 64], [1, 2, 3, 4, 5], [1.75], [0.0, 0.05], [2])
  assert len(runs) == 30
  assert len(group_runs([spec.config for spec in runs])) == 3


def test_sweep_is_resumable_after_a_kill(tmp_path, monkeypatch):
  argv = [
    "--dataset",
    "digits",
    "--widths",
    "16",
    "32",
    "--seeds",
    "1",
    "2",
    "--sigmas",
    "0",
    "0.05",
    "--noise-types",
    "2",
    "--lr",
    "0.1",
    "--max-steps",
    "20",
    "--eval-every",
    "10",
    "--target-accuracy",
    "100",
    "--out",
    str(tmp_path),
    "--no-progress",
  ]
  calls = []
  real_run = Trainer.run

  def dies_on_second_program(self, *a, **k):
    calls.append(self.cfg.width)
    if len(calls) == 2:
      raise KeyboardInterrupt  # as if killed while the second program ran
    return real_run(self, *a, **k)

  monkeypatch.setattr(Trainer, "run", dies_on_second_program)
  assert sweep.main(argv) == 130
  finished = sorted(p.name.rsplit("-", 1)[0] for p in tmp_path.iterdir() if records.is_finished(p))
  assert finished == [
    "n16_plain_seed1",
    "n16_plain_seed2",
    "n16_t2_a1.75_s0.05_seed1",
    "n16_t2_a1.75_s0.05_seed2",
  ]
  monkeypatch.setattr(Trainer, "run", real_run)
  trained = []
  monkeypatch.setattr(
    Trainer, "run", lambda self, *a, **k: trained.append(self.cfg.width) or real_run(self, *a, **k)
  )
  assert sweep.main(argv) == 0
  assert trained == [32]  # only the missing program ran
  csv_rows = (tmp_path / "runs.csv").read_text().strip().splitlines()
  assert len(csv_rows) == 1 + 8
  assert (tmp_path / "table.md").is_file() and (tmp_path / "pruning_curves.png").is_file()


def test_a_config_flag_given_with_a_preset_is_applied(tmp_path, capsys):
  """``sweep --preset NAME --lr X`` trains at X (it once trained at the preset's lr)."""
  import json

  import pytest

  from experiments.presets import get_experiments

  (exp,) = get_experiments("ecg5000_fcn:quick")
  assert exp.noisy.lr != 0.037
  flags = ["--preset", "ecg5000_fcn:quick", "--seeds", "1", "--sigmas", "0", "--no-progress"]
  short = ["--max-steps", "10", "--eval-every", "10", "--out", str(tmp_path / "s")]
  assert sweep.main([*flags, *short, "--lr", "0.037"]) == 0
  (record,) = (tmp_path / "s").glob("*/record.json")
  config = json.loads(record.read_text())["config"]
  assert (config["lr"], config["max_steps"], config["batch_size"]) == (
    0.037,
    10,
    exp.noisy.batch_size,
  )
  with pytest.raises(SystemExit):  # and a bad one is refused, as without a preset
    sweep.main([*flags, *short, "--lr", "-1"])
  assert "lr must be a positive number" in capsys.readouterr().err


def test_sweep_tune_sigma_chooses_on_a_validation_split(tmp_path, capsys):
  import json

  from experiments import sweep
  from experiments import tuning as tuning_lib

  out = tmp_path / "tune"
  code = sweep.main(
    [
      "--dataset", "digits", "--widths", "32", "--seeds", "1", "2", "--sigmas", "0.01", "3",
      "--noise-types", "2", "--lr", "0.1", "--batch-size", "100", "--max-steps", "60",
      "--eval-every", "30", "--target-accuracy", "none", "--tune", "sigma",
      "--out", str(out), "--no-progress",
    ]
  )  # fmt: skip
  assert code == 0
  chosen = json.loads((out / "tuning.json").read_text())
  assert chosen["sigma"] == {"32": {"type2 α=1.75": 0.01}}  # σ = 3 wrecks the network
  table = (out / "tuning.md").read_text()
  assert table.count("✓") == 2 and "| plain |" in table
  assert "lowest strength of its grid" in table  # a choice at the edge says so
  records = [json.loads(p.read_text()) for p in out.glob("*/record.json")]
  assert len(records) == 6  # σ = 0 joined as the reference
  assert all(r["dataset"]["name"] == "digits:validation" for r in records)
  assert not (out / "table.md").exists()
  # Stopped by a signal, the grid is partial: no choice is written, the resume hint is.
  (out / "tuning.json").unlink()
  base = TrainConfig(
    dataset="digits", width=32, lr=0.1, batch_size=100, max_steps=60, eval_every=30,
    target_accuracy=None, validation=0.2,
  )  # fmt: skip
  runs = sweep.grid_runs(base, [32], [1, 2], [1.75], [0.0, 0.01, 3.0], [2])
  ds = data.load_dataset("digits", validation=0.2)
  capsys.readouterr()
  assert tuning_lib.report(runs, ds, out, 1.0, "SIGTERM") == 143
  assert not (out / "tuning.json").exists()
  assert "rerun the same command to resume" in capsys.readouterr().out
