"""htsgd_jax.program: the pure compiled program, importable and usable without the driver."""

import jax.numpy as jnp
import pytest

from htsgd_jax.program import evaluate


def test_evaluate_handles_ragged_batches():
  def apply(p, x):
    return x @ p

  x = jnp.eye(3)[jnp.array([0, 1, 2, 0, 1])]
  loss, acc = evaluate(apply, 10 * jnp.eye(3), x, jnp.array([0, 1, 2, 0, 2]), batch_size=2)
  assert float(acc) == pytest.approx(80.0)


def test_the_program_imports_without_the_driver_or_the_experiments():
  import subprocess
  import sys

  code = (
    "import sys, htsgd_jax.program, htsgd_jax.compression, htsgd_jax.robustness;"
    "print(sorted(m for m in sys.modules if m in ('htsgd_jax.driver', 'htsgd_jax.training',"
    " 'htsgd_jax.checkpoints') or m.startswith('experiments')))"
  )
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "[]"


def test_a_loop_over_runs_is_the_vmap_over_them():
  from htsgd_jax.program import over_runs, stack

  def fn(params, x):
    return jnp.tanh(x @ params["w"]).sum(), x.sum()

  params = stack([{"w": jnp.full((3, 2), float(k))} for k in range(4)])
  x = jnp.arange(6.0).reshape(2, 3)
  looped = over_runs(fn, (0, None), one_at_a_time=True)(params, x)
  batched = over_runs(fn, (0, None), one_at_a_time=False)(params, x)
  for a, b in zip(looped, batched):
    assert a.shape == b.shape == (4,)
    assert a.tolist() == pytest.approx(b.tolist(), rel=1e-6)
