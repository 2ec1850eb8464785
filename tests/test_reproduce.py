"""The ``experiments.reproduce`` command: its outputs, reruns, and the presets it lists."""

import pathlib

import pytest

from experiments import presets, reproduce
from htsgd_jax.training import TrainConfig, Trainer

ROOT = pathlib.Path(__file__).resolve().parents[1]


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


def test_list_shows_every_preset_its_variants_and_commands(capsys):
  from experiments.presets import GROUPS, NAMES

  assert reproduce.main(["--list"]) == 0
  lines = capsys.readouterr().out.splitlines()
  listed = {line.split()[0]: line for line in lines}
  widths = {"ecg5000_fcn:widths", "mnist_fcn:widths"}
  assert set(listed) == {*GROUPS, *NAMES, *(f"{n}:quick" for n in NAMES), *widths}
  assert listed["quick"].endswith(" reproduce")
  assert listed["ecg5000_fcn:quick"].endswith("reproduce, sweep, compare")
  assert listed["cifar10_vgg:quick"].endswith("reproduce, sweep, compare")
  assert listed["mnist_vgg:quick"].endswith("reproduce, sweep, compare")
  # Several widths: sweep, whose widths are its own flag, does not take them.
  assert listed["mnist_fcn:widths"].endswith("reproduce, compare")
  assert "n=500/1000/2000/5000" in listed["mnist_fcn:widths"]


def test_a_widths_preset_is_its_quick_variant_at_several_widths(capsys):
  import dataclasses

  from experiments import sweep
  from experiments.presets import get_experiments

  # The widths.
  for name, widths in (
    ("ecg5000_fcn", (250, 500, 1000, 2000, 4000)),
    ("mnist_fcn", (500, 1000, 2000, 5000)),
  ):
    (exp,) = get_experiments(f"{name}:widths", "compare")
    (quick,) = get_experiments(f"{name}:quick", "compare")
    assert exp.widths == widths and exp.name == f"{name}_widths"
    assert dataclasses.replace(exp, name=quick.name, widths=()) == quick
    # One width of it is that width alone: the quick variant's runs there.
    assert exp.at_width(2000).widths == () and exp.at_width(2000).noisy.width == 2000
  with pytest.raises(SystemExit):
    sweep.main(["--preset", "mnist_fcn:widths"])
  assert "--preset mnist_fcn:quick --widths 500 1000 2000 5000" in capsys.readouterr().err
