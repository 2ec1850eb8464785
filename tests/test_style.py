"""Code habits, enforced by the test command: ruff's lint and format (pyproject.toml)."""

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff_passes(command):
  out = subprocess.run(
    [sys.executable, "-m", "ruff", *command, "."], cwd=ROOT, capture_output=True, text=True
  )
  assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-1000:]
