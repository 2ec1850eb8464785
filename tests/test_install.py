"""The core install: `pip install htsgd-jax` without extras imports and trains.

The optional packages are hidden from a fresh interpreter (an import hook
refuses them), which is what a user sees after a plain `pip install .`.
"""

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
OPTIONAL = ("tensorflow_datasets", "sklearn", "matplotlib", "tqdm", "scipy", "pandas")

HIDE = f"""
import importlib.abc, sys
class Hide(importlib.abc.MetaPathFinder):
  def find_spec(self, name, path=None, target=None):
    if name.split(".")[0] in {OPTIONAL!r}:
      raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Hide())
"""

CORE = """
import htsgd_jax
from htsgd_jax.data import teacher_student, load_dataset
from htsgd_jax.training import TrainConfig, train
ds = teacher_student(n_train=200, n_test=50)
r = train(TrainConfig(dataset="teacher_student", width=16, lr=0.1, batch_size=50,
                      max_steps=10, eval_every=10, sigma=0.01, noise_type=2), ds)
print("trained", r.steps)
try:
  load_dataset("digits")
except ModuleNotFoundError as err:
  print("refused:", err)
for name in {optional!r}:
  assert name not in sys.modules, name
"""


def test_core_imports_and_trains_without_the_optional_packages():
  readme = (ROOT / "README.md").read_text()
  example = re.findall(r"```python\n(.*?)```", readme, flags=re.S)[0]
  code = HIDE + example + CORE.format(optional=OPTIONAL)
  out = subprocess.run(
    [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
  )
  assert out.returncode == 0, out.stderr[-3000:]
  assert "True" in out.stdout and "trained 10" in out.stdout
  assert "pip install 'htsgd-jax[data]'" in out.stdout
