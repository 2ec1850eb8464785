"""Heavy-tailed iterate noise as an optax gradient transformation.

The algorithm of Wan, Barsbey, Zaidi & Şimşekli (2023), as in the authors'
code: after each SGD step, every weight matrix of a hidden layer gets additive
α-stable noise scaled by ``sigma * lr**(1/alpha)``::

  θ_{k+1} = θ_k - lr ∇L(θ_k) + sigma * lr**(1/alpha) * ξ_k

Place the transform *after* the optimiser in ``optax.chain``: it adds the noise
to the outgoing updates, so ``optax.apply_updates`` yields the step plus noise.

Noise types (a column = one hidden unit's incoming weights, see
:mod:`htsgd_jax.columns`):

1. one ``symmetric_stable(alpha)`` scalar per column, added to all its entries;
2. i.i.d. ``symmetric_stable(alpha)`` entries;
3. one sub-Gaussian α-stable vector per column
   (:func:`htsgd_jax.stable.sub_gaussian_stable`).

All three have the same per-entry marginal ``symmetric_stable(alpha, 1)``
(characteristic function ``exp(-|t|**alpha)``, which is N(0, 2) at α = 2).
Differences from the reference PyTorch code, which mixes conventions: its
type 3 has marginal scale ``2**-0.5`` (pass ``sigma / sqrt(2)`` to match it
exactly), and its type 1 at α = 2 draws N(0, 1) (also ``sigma / sqrt(2)``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from htsgd_jax import columns as columns_lib
from htsgd_jax import stable

NOISE_TYPES = (1, 2, 3)


class HeavyTailedNoiseState(NamedTuple):
  """State of :func:`heavy_tailed_noise`.

  Attributes:
    count: number of updates applied so far (drives learning-rate schedules).
    key: PRNG key for the next update's noise.

  Example:
    >>> state = heavy_tailed_noise(1.5, 0.1, 0.01, key=3).init({})
    >>> int(state.count)
    0
  """
  count: jax.Array
  key: jax.Array


def as_key(key) -> jax.Array:
  """Accepts an int seed, a typed key or a raw uint32 key; returns a key.

  Example:
    >>> k = as_key(0)
    >>> as_key(k) is k
    True
  """
  if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
    return jax.random.key(int(key))
  dtype, shape = getattr(key, "dtype", None), getattr(key, "shape", None)
  if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key):
    return key
  if dtype == jnp.uint32 and tuple(shape)[-1:] == (2,):
    return jnp.asarray(key)
  raise ValueError(
      "key must be an int seed, a key from jax.random.key or a raw uint32 key"
      f" from jax.random.PRNGKey; got {type(key).__name__} with dtype {dtype}"
      f" and shape {shape}.")


def check_noise_type(noise_type) -> None:
  """Raises ``ValueError`` unless ``noise_type`` is 1, 2 or 3.

  Example:
    >>> check_noise_type(3)
    >>> check_noise_type(0)
    Traceback (most recent call last):
    ...
    ValueError: noise_type must be 1 (one scalar per column), 2 (i.i.d. entries) or 3 (sub-Gaussian vector per column); got 0.
  """
  if noise_type not in NOISE_TYPES:
    raise ValueError(
        f"noise_type must be 1 (one scalar per column), 2 (i.i.d. entries) or"
        f" 3 (sub-Gaussian vector per column); got {noise_type!r}.")


def column_noise(key, shape, alpha, noise_type: int, conv_column="filter",
                 dtype=jnp.float32) -> jax.Array:
  """Draws unit-scale noise of one type for a kernel of ``shape``.

  Args:
    key: PRNG key.
    shape: the kernel's shape (rank >= 2).
    alpha: tail index in (0, 2]; may be traced.
    noise_type: 1, 2 or 3 (see the module docstring).
    conv_column: how conv kernels are split into columns.
    dtype: output dtype.

  Returns:
    Noise of ``shape``.

  Example:
    >>> import jax
    >>> n = column_noise(jax.random.key(0), (4, 3), 1.75, noise_type=1)
    >>> bool((n == n[0]).all())  # one value per column
    True
  """
  check_noise_type(noise_type)
  d, n = columns_lib.columns_shape(tuple(shape), conv_column)
  if noise_type == 1:
    noise = jnp.broadcast_to(stable.symmetric_stable(key, (1, n), alpha, dtype=dtype), (d, n))
  elif noise_type == 2:
    noise = stable.symmetric_stable(key, (d, n), alpha, dtype=dtype)
  else:
    noise = stable.sub_gaussian_stable(key, (d, n), alpha, axis=0, dtype=dtype)
  return noise.reshape(shape)



def heavy_tailed_noise(
    alpha,
    sigma,
    learning_rate: optax.ScalarOrSchedule,
    noise_type: int = 1,
    key: Any = 0,
    mask: columns_lib.Mask | None = None,
    conv_column: columns_lib.ConvColumn = "filter",
) -> optax.GradientTransformationExtraArgs:
  """Adds ``sigma * lr**(1/alpha)``-scaled α-stable noise to hidden-layer updates.

  Args:
    alpha: tail index in (0, 2] (2 is Gaussian); may be a traced value.
    sigma: noise scale >= 0; ``0`` returns the updates untouched (bit for bit).
    learning_rate: the SGD learning rate, a float or an optax schedule (then the
      rate at the current step is used).
    noise_type: 1, 2 or 3; see the module docstring.
    key: int seed, typed key or raw uint32 key; stored in the state.
    mask: which leaves get noise: ``None`` for
      :func:`htsgd_jax.columns.hidden_layer_mask` (hidden kernels, no biases,
      no classifier, no first conv), a bool pytree, or a callable returning one
      (as in ``optax.masked``).
    conv_column: ``"filter"`` or ``"kernel"``: what one column of a conv kernel is.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import jax, jax.numpy as jnp, optax
    >>> params = {"hidden_0": {"kernel": jnp.ones((3, 4))},
    ...           "classifier": {"kernel": jnp.ones((4, 2))}}
    >>> lr = 0.1
    >>> tx = optax.chain(optax.sgd(lr), heavy_tailed_noise(1.75, 0.003, lr, key=0))
    >>> state = tx.init(params)
    >>> grads = jax.tree.map(jnp.zeros_like, params)
    >>> updates, state = jax.jit(tx.update)(grads, state, params)
    >>> bool((updates["classifier"]["kernel"] == 0).all())
    True
    >>> bool((updates["hidden_0"]["kernel"] != 0).all())
    True

  References:
    Wan, Barsbey, Zaidi & Şimşekli, "Implicit Compressibility of
    Overparametrized Neural Networks Trained with Heavy-Tailed SGD",
    arXiv:2306.08125.
  """
  stable.check_alpha(alpha)
  stable.check_scale(sigma, name="sigma")
  check_noise_type(noise_type)
  columns_lib.check_conv_column(conv_column)
  if not callable(learning_rate):
    stable.check_scale(learning_rate, name="learning_rate")
  init_key = as_key(key)
  # A concrete zero σ skips the noise entirely: plain SGD, bit for bit.
  skip = stable.is_concrete(sigma) and bool(np.all(np.asarray(sigma) == 0))

  def init_fn(params):
    del params
    return HeavyTailedNoiseState(count=jnp.zeros([], jnp.int32), key=init_key)

  def update_fn(updates, state, params=None, **extra_args):
    del params, extra_args
    next_key, noise_key = jax.random.split(state.key)
    new_state = HeavyTailedNoiseState(count=optax.safe_increment(state.count), key=next_key)
    if skip:
      return updates, new_state
    lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
    scale = sigma * jnp.asarray(lr, jnp.float32) ** (1.0 / jnp.asarray(alpha, jnp.float32))
    leaves, treedef = jax.tree_util.tree_flatten(updates)
    chosen = treedef.flatten_up_to(columns_lib.resolve_mask(mask, updates))
    keys = jax.random.split(noise_key, max(len(leaves), 1))
    out = []
    for leaf, k, use in zip(leaves, keys, chosen):
      if use and leaf is not None:
        noise = column_noise(k, leaf.shape, alpha, noise_type, conv_column, leaf.dtype)
        # where, not a product: a traced sigma of 0 must not turn an inf draw into NaN.
        leaf = leaf + jnp.where(scale > 0, scale * noise, 0).astype(leaf.dtype)
      out.append(leaf)
    return jax.tree_util.tree_unflatten(treedef, out), new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def noisy_sgd(
    learning_rate: optax.ScalarOrSchedule,
    alpha,
    sigma,
    noise_type: int = 1,
    key: Any = 0,
    mask: columns_lib.Mask | None = None,
    conv_column: columns_lib.ConvColumn = "filter",
) -> optax.GradientTransformationExtraArgs:
  """SGD followed by heavy-tailed iterate noise: the paper's optimiser.

  ``noisy_sgd(lr, alpha, sigma, ...)`` is
  ``optax.chain(optax.sgd(lr), heavy_tailed_noise(alpha, sigma, lr, ...))``.

  Example:
    >>> import jax.numpy as jnp
    >>> tx = noisy_sgd(0.01, alpha=1.75, sigma=0.003, key=1)
    >>> state = tx.init({"hidden_0": {"kernel": jnp.zeros((2, 2))}})
  """
  return optax.chain(
      optax.sgd(learning_rate),
      heavy_tailed_noise(alpha, sigma, learning_rate, noise_type, key, mask, conv_column))
