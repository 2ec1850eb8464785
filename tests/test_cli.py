"""The command-line entry points, end to end on small offline data."""

import json
import pathlib

import pytest

from experiments import presets, reproduce
from experiments import train as train_cli
from htsgd_jax import records
from htsgd_jax.training import TrainConfig, Trainer

ROOT = pathlib.Path(__file__).resolve().parents[1]

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


@pytest.mark.parametrize("command", ["sweep", "compare"])
def test_a_group_or_unknown_preset_is_refused_with_what_the_command_takes(command, capsys):
  import importlib

  main = importlib.import_module(f"experiments.{command}").main
  with pytest.raises(SystemExit) as refused:
    main(["--preset", "quick"])
  assert refused.value.code == 2
  assert "names several presets" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    main(["--preset", "nope"])
  err = capsys.readouterr().err
  assert "ecg5000_fcn:quick" in err and "'quick'" not in err.split("takes")[1]
  if command == "compare":
    assert "mnist_vgg:quick" in err  # CNN presets too (compact_conv)


def test_a_command_without_the_packages_says_how_to_set_up():
  import shutil
  import subprocess

  python = shutil.which("python3", path="/usr/local/bin:/usr/bin:/root/.pyenv/shims")
  probe = python and subprocess.run([python, "-c", "import jax"], capture_output=True)
  if not python or probe.returncode == 0:
    pytest.skip("no Python without jax on this machine")
  out = subprocess.run(
    [python, "-m", "experiments.reproduce"], cwd=ROOT, capture_output=True, text=True
  )
  assert out.returncode == 2
  assert "bash .ci/setup.sh" in out.stderr and "Traceback" not in out.stderr


COMMANDS = ("train", "reproduce", "sweep", "compare", "gather_widths", "mean_field", "paired")


def test_help_answers_before_jax_is_imported():
  """Every command's --help (and every flag's help text) without importing JAX, Flax or optax."""
  import subprocess
  import sys

  probe = f"""
import contextlib, io, sys
from experiments import {", ".join(COMMANDS)}
for command in ({", ".join(COMMANDS)}):
  text = io.StringIO()
  with contextlib.redirect_stdout(text), contextlib.suppress(SystemExit):
    command.main(["--help"])
  assert "usage:" in text.getvalue(), command.__name__
print(sorted({{m.split(".")[0] for m in sys.modules}} & {{"jax", "jaxlib", "flax", "optax"}}))
"""
  out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
  assert out.returncode == 0, out.stderr
  assert out.stdout.strip() == "[]"


def test_the_package_exports_every_public_name_lazily():
  import htsgd_jax

  assert set(htsgd_jax.__all__) <= set(dir(htsgd_jax))
  for name in htsgd_jax.__all__:
    assert getattr(htsgd_jax, name).__name__ == name
  assert htsgd_jax.models.build_model  # submodules resolve as attributes, as before
  with pytest.raises(AttributeError, match="no attribute 'nothing'"):
    htsgd_jax.nothing


def test_a_command_whose_reader_goes_away_ends_quietly():
  """A reader that goes away (``| head``) is no disk error: no "Free space" advice, status 0.

  ``true`` reads nothing and exits at once, long before the command has imported its modules
  and prints: the write meets a closed pipe every time."""
  import shlex
  import subprocess
  import sys

  out = subprocess.run(
    f"{shlex.quote(sys.executable)} -m experiments.reproduce --list | true;"
    " exit ${PIPESTATUS[0]}",
    shell=True,
    executable="/bin/bash",
    cwd=ROOT,
    capture_output=True,
    text=True,
  )
  assert out.stderr == "" and out.returncode == 0, out.stderr
