"""Every notebook runs top to bottom against the installed library and draws its figures."""

import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
  assert {p.stem for p in NOTEBOOKS} >= {"quickstart", "stable_noise", "compressibility"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_and_renders_figures(path, tmp_path):
  nb = nbformat.read(path, as_version=4)
  assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
    "commit notebooks with outputs cleared"
  )
  # One simulated device, like a user's notebook (conftest's XLA_FLAGS is for the sharding tests).
  env_setup = nbformat.v4.new_code_cell(
    "import os; os.environ['XLA_FLAGS'] = ''; os.environ['MPLBACKEND'] = 'module://matplotlib_inline.backend_inline'"
  )
  nb.cells.insert(0, env_setup)
  NotebookClient(
    nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
  ).execute()
  images = [
    o
    for c in nb.cells
    if c.cell_type == "code"
    for o in c.get("outputs", [])
    if "image/png" in o.get("data", {})
  ]
  assert images, f"{path.name} drew no figure"
  warnings = [
    o["text"]
    for c in nb.cells
    if c.cell_type == "code"
    for o in c.get("outputs", [])
    if o.get("name") == "stderr" and "Warning" in o.get("text", "")
  ]
  assert not warnings, f"{path.name} prints warnings: {warnings[:2]}"
