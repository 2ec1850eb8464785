"""Group lasso (htsgd_jax.proximal): the block soft threshold, an optax transform, in training."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from htsgd_jax import compact, data, proximal
from htsgd_jax.training import TrainConfig, Trainer


def test_shrink_columns_is_the_block_soft_threshold():
  rng = np.random.default_rng(0)
  kernel = rng.normal(size=(5, 7)).astype(np.float32)
  kernel[:, 3] = 0.0
  threshold = 2.0
  out = np.asarray(proximal.shrink_columns(jnp.asarray(kernel), threshold))
  for j in range(7):
    norm = np.linalg.norm(kernel[:, j])
    want = kernel[:, j] * max(0.0, 1 - threshold / norm) if norm > 0 else 0 * kernel[:, j]
    np.testing.assert_allclose(out[:, j], want, rtol=1e-6, atol=1e-7)
  assert np.all(out[:, 3] == 0) and np.isfinite(out).all()


def test_group_lasso_zeroes_columns_exactly_and_leaves_the_rest():
  params = {
    "hidden_0": {"kernel": jnp.array([[3.0, 0.03], [4.0, 0.04]])},
    "classifier": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)},
  }
  tx = optax.chain(optax.sgd(0.1), proximal.group_lasso(1.0, 0.1))
  grads = jax.tree.map(jnp.ones_like, params)
  updates, _ = tx.update(grads, tx.init(params), params)
  new = optax.apply_updates(params, updates)
  # Column 2 after the step, (-0.07, -0.06), has norm 0.092 < lr·λ = 0.1: exactly zero.
  assert np.all(np.asarray(new["hidden_0"]["kernel"][:, 1]) == 0.0)
  stepped = np.array([2.9, 3.9])
  np.testing.assert_allclose(
    new["hidden_0"]["kernel"][:, 0], stepped * (1 - 0.1 / np.linalg.norm(stepped)), rtol=1e-6
  )
  # The classifier is not penalised: plain SGD there.
  np.testing.assert_allclose(new["classifier"]["kernel"], 0.9 * np.ones((2, 2)), rtol=1e-6)


def test_traced_group_lasso_strengths():
  params = {
    "hidden_0": {"kernel": jnp.arange(6.0).reshape(2, 3)},
    "classifier": {"kernel": jnp.ones((3, 2))},
  }
  grads = jax.tree.map(lambda x: 0.37 * jnp.ones_like(x), params)

  @jax.jit
  def step(strength):
    tx = optax.chain(optax.sgd(0.1), proximal.group_lasso(strength, 0.1))
    return tx.update(grads, tx.init(params), params)[0]

  plain = optax.sgd(0.1).update(grads, optax.sgd(0.1).init(params))[0]
  # A traced λ of 0 is plain SGD bit for bit (plain runs ride in group-lasso programs).
  assert all(
    np.array_equal(a, b) for a, b in zip(jax.tree.leaves(step(0.0)), jax.tree.leaves(plain))
  )
  for bad in (-1.0, np.nan):
    out = step(bad)
    assert np.isnan(out["hidden_0"]["kernel"]).all()
    assert np.array_equal(out["classifier"]["kernel"], plain["classifier"]["kernel"])
  with pytest.raises(ValueError, match="group lasso strength"):
    proximal.group_lasso(-1.0, 0.1)


def test_group_lasso_in_the_trainer_beside_plain_runs():
  ds = data.load_dataset("digits")
  base = TrainConfig(
    dataset="digits",
    width=64,
    lr=0.1,
    batch_size=100,
    max_steps=60,
    eval_every=30,
    target_accuracy=None,
    noise_type=0,
  )
  alone = Trainer([base], ds).run(progress=False)[0]
  runs = Trainer([base, dataclasses.replace(base, group_lasso=0.1)], ds).run(progress=False)
  # The plain run is untouched by sharing the program with a group-lasso run ...
  for a, b in zip(jax.tree.leaves(alone.params), jax.tree.leaves(runs[0].params)):
    np.testing.assert_array_equal(a, b)
  # ... which removes whole units, exactly: compact_dense drops them.
  kernel = runs[1].params["hidden_0"]["kernel"]
  dead = int(np.sum(np.all(kernel == 0, axis=0)))
  assert 0 < dead < 64
  assert compact.compact_dense(runs[1].params).widths == {"hidden_0": 64 - dead}
