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


MAX_OWN_LINES = 80
LAYERS = ("htsgd_jax", "experiments", "benchmarks")


def own_lines(fn) -> int:
  """A function's lines, less its docstring and the functions defined inside it."""
  import ast

  lines = set(range(fn.lineno, fn.end_lineno + 1))
  first = fn.body[0]
  if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant):
    lines -= set(range(first.lineno, first.end_lineno + 1))
  for node in ast.walk(fn):
    if node is not fn and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
      lines -= set(range(node.lineno - len(node.decorator_list), node.end_lineno + 1))
  return len(lines)


def test_no_function_is_over_80_lines_of_its_own():
  """Long functions hide what they do; split them into steps that each say theirs."""
  import ast

  too_long = [
    f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({own_lines(node)} lines)"
    for layer in LAYERS
    for path in sorted((ROOT / layer).rglob("*.py"))
    for node in ast.walk(ast.parse(path.read_text()))
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and own_lines(node) > MAX_OWN_LINES
  ]
  assert not too_long, too_long


def test_the_library_never_imports_the_experiments_or_the_trainers_facade():
  """Layers point down: stable → noise → program → driver → experiments."""
  import ast

  upward = []
  for path in sorted((ROOT / "htsgd_jax").glob("*.py")):
    # the façade, its old name, and the re-exports themselves
    if path.name in ("__init__.py", "training.py", "train.py"):
      continue
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom):  # the module, and each name as a submodule
        names = [node.module or "", *(f"{node.module}.{a.name}" for a in node.names)]
      else:
        continue
      upward += [
        f"{path.name}: {n}"
        for n in names
        if n.startswith("experiments") or n in ("htsgd_jax.training", "htsgd_jax.train")
      ]
  assert not upward, upward


def test_the_old_name_of_the_training_api_still_imports_and_says_its_new_one():
  import subprocess
  import sys

  code = "import warnings; warnings.simplefilter('error');from htsgd_jax.train import TrainConfig"
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
  assert "htsgd_jax.train is now htsgd_jax.training" in out.stderr
  code = (
    "import warnings; warnings.simplefilter('ignore'); from htsgd_jax.train import train, Trainer"
  )
  subprocess.run([sys.executable, "-c", code], check=True)
