"""experiments.cli, shared by the commands: set-up hints, --help without JAX, exports, pipes."""

import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


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
