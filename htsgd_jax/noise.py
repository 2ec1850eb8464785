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

import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from htsgd_jax import columns as columns_lib
from htsgd_jax import stable
from htsgd_jax.noise_types import NOISE_TYPES, described


class HeavyTailedNoiseState(NamedTuple):
  """State of :func:`heavy_tailed_noise`.

  Attributes:
    count: number of updates applied so far (drives learning-rate schedules).
    key: PRNG key for the next update's noise.

  Example:
    >>> import jax.numpy as jnp
    >>> params = {"hidden_0": {"kernel": jnp.ones((3, 4))},
    ...           "classifier": {"kernel": jnp.ones((4, 2))}}
    >>> state = heavy_tailed_noise(1.5, 0.1, 0.01, key=3).init(params)
    >>> int(state.count)
    0
  """

  count: jax.Array
  key: jax.Array


def as_key(key) -> jax.Array:
  """Accepts an int seed, a typed key or a raw uint32 key; returns a key.

  Integer seeds may be arrays of shape ``()``, also traced: ``vmap`` over
  seeds, or ``optax.inject_hyperparams``, which turns the seed into an array.

  Example:
    >>> k = as_key(0)
    >>> as_key(k) is k
    True
    >>> import jax, jax.numpy as jnp
    >>> jax.vmap(as_key)(jnp.arange(3)).shape
    (3,)
  """
  if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
    return jax.random.key(int(key))
  dtype, shape = getattr(key, "dtype", None), getattr(key, "shape", None)
  if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key):
    return key
  if dtype == jnp.uint32 and tuple(shape)[-1:] == (2,):
    return jnp.asarray(key)
  if dtype is not None and jnp.issubdtype(dtype, jnp.integer) and tuple(shape) == ():
    return jax.random.key(key)
  raise ValueError(
    "key must be an int seed, a key from jax.random.key or a raw uint32 key"
    f" from jax.random.PRNGKey; got {type(key).__name__} with dtype {dtype}"
    f" and shape {shape}."
  )


def check_noise_type(noise_type) -> None:
  """Raises ``ValueError`` unless ``noise_type`` is 1, 2 or 3 (a traced value passes).

  Example:
    >>> check_noise_type(3)
    >>> check_noise_type(0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: noise_type must be 1 (one scalar per column), 2 (i.i.d. entries) or 3 ...
  """
  if not stable.is_concrete(noise_type):
    return
  if np.ndim(noise_type) != 0 or noise_type not in NOISE_TYPES:
    raise ValueError(f"noise_type must be {described()}; got {noise_type!r}.")


def column_noise(
  key, shape, alpha, noise_type: int, conv_column="filter", dtype=jnp.float32
) -> jax.Array:
  """Draws unit-scale noise of one type for a kernel of ``shape``.

  Args:
    key: PRNG key.
    shape: the kernel's shape (rank >= 2).
    alpha: tail index in (0, 2]; may be traced.
    noise_type: 1, 2 or 3 (see the module docstring). A traced noise type
      (``optax.inject_hyperparams`` makes every int argument one) selects the
      type at run time with ``lax.switch``; a traced value outside 1–3 gives
      NaN noise.
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
  draws = (
    lambda: jnp.broadcast_to(stable.symmetric_stable(key, (1, n), alpha, dtype=dtype), (d, n)),
    lambda: stable.symmetric_stable(key, (d, n), alpha, dtype=dtype),
    lambda: stable.sub_gaussian_stable(key, (d, n), alpha, axis=0, dtype=dtype),
  )
  if stable.is_concrete(noise_type):
    noise = draws[int(noise_type) - 1]()
  else:
    index = jnp.asarray(noise_type, jnp.int32) - 1
    noise = jax.lax.switch(jnp.clip(index, 0, 2), draws)
    noise = jnp.where((index >= 0) & (index <= 2), noise, jnp.nan)
  return noise.reshape(shape)


def heavy_tailed_noise(
  alpha,
  sigma,
  learning_rate: optax.ScalarOrSchedule,
  noise_type: int = 1,
  key: Any = 0,
  mask: columns_lib.Mask | None = None,
  conv_column: columns_lib.ConvColumn = "filter",
  tail_clip: float | None = None,
) -> optax.GradientTransformationExtraArgs:
  """Adds ``sigma * lr**(1/alpha)``-scaled α-stable noise to hidden-layer updates.

  The noise follows the exact α-stable law, far tail included (see
  :mod:`htsgd_jax.stable`): rare huge kicks are the paper's mechanism.
  ``tail_clip`` bounds them for users who want bounded kicks.

  Under ``jit``/``vmap`` with *traced* ``alpha`` or ``sigma`` (sweeps,
  ``optax.inject_hyperparams``), values that would be rejected if concrete
  (``alpha`` outside (0, 2], ``sigma`` negative or non-finite) give NaN
  updates on the noisy leaves instead of ``inf`` or silent zeros, so a
  trainer sees a non-finite step (``htsgd_jax.training`` marks the run
  ``diverged``). ``optax.inject_hyperparams(noisy_sgd)(learning_rate=...,
  alpha=..., sigma=...)`` works: the seed it injects is only read at
  ``init``, and an injected noise type selects the draw with ``lax.switch``.

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
    tail_clip: ``None`` (default) for the exact law; or ``c > 0`` to clip each
      unit-scale draw ξ to ``[-c, c]`` before scaling (the noise is then
      ``sigma * lr**(1/alpha) * clip(ξ, -c, c)``: draws inside the bound are
      unchanged). For type 3, each entry of the vector is clipped.

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
  if tail_clip is not None and stable.is_concrete(tail_clip):
    if not np.all(np.asarray(tail_clip, np.float64) > 0):
      raise ValueError(f"tail_clip must be None (the exact law) or > 0; got {tail_clip}.")
  init_key = as_key(key)
  # A concrete zero σ skips the noise entirely: plain SGD, bit for bit.
  skip = stable.is_concrete(sigma) and bool(np.all(np.asarray(sigma) == 0))

  def init_fn(params):
    _check_selects_leaves(mask, params)
    return HeavyTailedNoiseState(count=jnp.zeros([], jnp.int32), key=init_key)

  def update_fn(updates, state, params=None, **extra_args):
    del params, extra_args
    next_key, noise_key = jax.random.split(state.key)
    new_state = HeavyTailedNoiseState(count=optax.safe_increment(state.count), key=next_key)
    if skip:
      return updates, new_state
    lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
    a, sig = jnp.asarray(alpha, jnp.float32), jnp.asarray(sigma, jnp.float32)
    scale = sig * jnp.asarray(lr, jnp.float32) ** (1.0 / a)
    # Concrete values were checked above; traced ones out of range poison the step.
    valid = (a > 0) & (a <= 2) & (sig >= 0) & jnp.isfinite(sig)
    safe_alpha = jnp.where(valid, a, 1.0)  # keeps the draw itself free of NaN
    leaves, treedef = jax.tree_util.tree_flatten(updates)
    chosen = treedef.flatten_up_to(columns_lib.resolve_mask(mask, updates))
    keys = jax.random.split(noise_key, max(len(leaves), 1))
    out = []
    for leaf, k, use in zip(leaves, keys, chosen):
      if use and leaf is not None:
        noise = column_noise(k, leaf.shape, safe_alpha, noise_type, conv_column, leaf.dtype)
        if tail_clip is not None:
          noise = jnp.clip(noise, -tail_clip, tail_clip)
        # where, not a product: a traced sigma of 0 must not turn an inf draw into NaN.
        kick = jnp.where(scale > 0, scale * noise, 0)
        leaf = leaf + jnp.where(valid, kick, jnp.nan).astype(leaf.dtype)
      out.append(leaf)
    return jax.tree_util.tree_unflatten(treedef, out), new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _check_selects_leaves(mask, params) -> None:
  """Refuses a tree where the default rule finds no hidden layer; warns for an empty ``mask``."""
  chosen = jax.tree.leaves(columns_lib.resolve_mask(mask, params))
  if any(bool(c) for c in chosen):
    return
  if mask is None:
    raise ValueError(
      "heavy_tailed_noise found no hidden layer to add noise to: it takes leaves named"
      " 'kernel' of rank >= 2, except the classifier (a module named 'classifier', else the"
      " last kernel) and the first convolution. Name the layers so (Flax's Dense and Conv"
      " call their weights 'kernel'), or pass mask= to choose the leaves."
    )
  warnings.warn("heavy_tailed_noise: mask selects no leaf; the noise adds nothing.", stacklevel=3)


def noisy_sgd(
  learning_rate: optax.ScalarOrSchedule,
  alpha,
  sigma,
  noise_type: int = 1,
  key: Any = 0,
  mask: columns_lib.Mask | None = None,
  conv_column: columns_lib.ConvColumn = "filter",
  tail_clip: float | None = None,
) -> optax.GradientTransformationExtraArgs:
  """SGD followed by heavy-tailed iterate noise: the paper's optimiser.

  ``noisy_sgd(lr, alpha, sigma, ...)`` is
  ``optax.chain(optax.sgd(lr), heavy_tailed_noise(alpha, sigma, lr, ...))``.

  Example:
    >>> import jax.numpy as jnp, optax
    >>> params = {"hidden_0": {"kernel": jnp.zeros((2, 2))},
    ...           "classifier": {"kernel": jnp.zeros((2, 1))}}
    >>> tx = noisy_sgd(0.01, alpha=1.75, sigma=0.003, key=1)
    >>> state = tx.init(params)

    With hyperparameters in the state, as ``optax.inject_hyperparams`` does:

    >>> tx = optax.inject_hyperparams(noisy_sgd)(learning_rate=0.01, alpha=1.75, sigma=0.003)
    >>> sorted(tx.init(params).hyperparams)
    ['alpha', 'key', 'learning_rate', 'noise_type', 'sigma']
  """
  return optax.chain(
    optax.sgd(learning_rate),
    heavy_tailed_noise(alpha, sigma, learning_rate, noise_type, key, mask, conv_column, tail_clip),
  )
