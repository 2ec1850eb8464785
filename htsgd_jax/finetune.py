"""Fine-tuning pruned networks: plain SGD that keeps the removed units removed.

After :func:`htsgd_jax.prune` a removed hidden unit is a zero column of its
layer's kernel. :func:`fine_tune` trains a batch of such networks (``vmap``,
one compiled program) with plain SGD on the same minibatches, holding every
hidden-layer weight that is exactly zero at zero, so each network keeps its
size; biases and the classifier train freely (a removed unit's constant
output, its activated bias, is what :func:`htsgd_jax.compact_dense` folds
into the next layer). A trained weight is exactly zero with probability ~0,
so in practice only the pruned columns are held.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from htsgd_jax import columns as columns_lib
from htsgd_jax.program import over_runs, runs_in_a_loop, stack


def fine_tune(
  apply_fn: Callable,
  params_list: Sequence[Any],
  x,
  y,
  steps: int,
  learning_rate: float,
  batch_size: int = 100,
  key: int = 0,
) -> list[Any]:
  """Every network after ``steps`` of plain SGD, its zero hidden weights held at zero.

  Args:
    apply_fn: ``apply_fn(params, x) -> logits``.
    params_list: one parameter pytree per run (one architecture), pruned.
    x, y: the training data.
    steps: SGD steps (minibatches drawn uniformly, with replacement, from
      ``key``: the same for every network).
    learning_rate: the SGD step size.
    batch_size: examples per step.
    key: seed of the minibatches.

  Returns:
    The fine-tuned parameters, one pytree per run. A network whose loss
    diverges comes back with non-finite parameters: check before using them.

  Example:
    >>> import jax.numpy as jnp
    >>> def apply(p, x):
    ...   return jnp.maximum(x @ p["hidden_0"]["kernel"], 0) @ p["classifier"]["kernel"]
    >>> p = {"hidden_0": {"kernel": jnp.array([[1.0, 0.0], [1.0, 0.0]])},
    ...      "classifier": {"kernel": jnp.ones((2, 2))}}
    >>> x, y = jnp.array([[1.0, 2.0], [2.0, 1.0]]), jnp.array([0, 1])
    >>> (tuned,) = fine_tune(apply, [p], x, y, steps=5, learning_rate=0.1, batch_size=2)
    >>> tuned["hidden_0"]["kernel"][:, 1].tolist()  # the removed unit stays removed
    [0.0, 0.0]
    >>> bool((tuned["classifier"]["kernel"] != 1).any())  # the rest trained
    True
  """
  if steps < 0 or batch_size < 1 or not np.isfinite(learning_rate) or learning_rate <= 0:
    raise ValueError(
      f"fine_tune needs steps >= 0, batch_size >= 1 and a finite learning_rate > 0; got"
      f" steps={steps}, batch_size={batch_size}, learning_rate={learning_rate}."
    )
  stacked = stack(params_list)
  hidden = columns_lib.hidden_layer_mask(params_list[0])
  trainable = jax.tree.map(lambda p, h: (p != 0) if h else jnp.ones_like(p, bool), stacked, hidden)
  x, y = jnp.asarray(x), jnp.asarray(y)
  batches = jax.random.randint(jax.random.key(key), (steps, batch_size), 0, y.shape[0])

  def loss(params, xb, yb):
    logits = apply_fn(params, xb).astype(jnp.float32)
    return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

  def one_run(params, free):
    def step(p, idx):
      grads = jax.grad(loss)(p, x[idx], y[idx])
      moved = jax.tree.map(lambda w, g, f: jnp.where(f, w - learning_rate * g, w), p, grads, free)
      return moved, None

    return jax.lax.scan(step, params, batches)[0]

  tuned = jax.jit(over_runs(one_run, (0, 0), runs_in_a_loop(stacked)))(stacked, trainable)
  return [jax.tree.map(lambda leaf, i=i: leaf[i], tuned) for i in range(len(params_list))]
