"""Proximal steps of sparsity penalties as optax transforms: group lasso on columns.

The penalty ``λ Σ_j ‖θ_{:,j}‖₂`` (the L2,1 norm of each hidden kernel's
columns, one column per hidden unit, see :mod:`htsgd_jax.columns`) is not
differentiable where a column is zero, which is exactly where it should land.
So it is applied as a *proximal* step after the optimiser's step, as in
proximal gradient descent (ISTA)::

  θ' = θ_k - lr ∇L(θ_k)
  θ_{k+1, j} = max(0, 1 - lr λ / ‖θ'_j‖) θ'_j     (every column j)

Columns whose norm falls below ``lr λ`` in one step become exactly zero, so
:func:`htsgd_jax.prune` and :func:`htsgd_jax.compact_dense` remove them; the
others shrink towards zero by ``lr λ``. Place the transform after the optimiser
in ``optax.chain`` (it needs the step's updates and the parameters).

References:
  Yuan & Lin, "Model selection and estimation in regression with grouped
  variables", JRSS B 68 (2006). Wen, Wu, Wang, Chen & Li, "Learning
  Structured Sparsity in Deep Neural Networks", NeurIPS 2016.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from htsgd_jax import columns as columns_lib
from htsgd_jax import stable


def shrink_columns(kernel, threshold, conv_column: columns_lib.ConvColumn = "filter") -> jax.Array:
  """The proximal operator of ``threshold · Σ_j ‖kernel_{:,j}‖``: block soft-thresholding.

  Example:
    >>> shrink_columns(jnp.array([[3.0, 0.3], [4.0, 0.4]]), 1.0)  # norms 5 and 0.5
    Array([[2.4, 0. ],
           [3.2, 0. ]], dtype=float32)
  """
  matrix = columns_lib.as_columns(kernel, conv_column)
  norms = jnp.linalg.norm(matrix, axis=0, keepdims=True)
  # where, not a division by a zero norm: a zero column stays exactly zero.
  factor = jnp.where(norms > threshold, 1.0 - threshold / jnp.where(norms > 0, norms, 1.0), 0.0)
  return (matrix * factor.astype(matrix.dtype)).reshape(kernel.shape)


def group_lasso(
  strength,
  learning_rate: optax.ScalarOrSchedule,
  mask: columns_lib.Mask | None = None,
  conv_column: columns_lib.ConvColumn = "filter",
) -> optax.GradientTransformationExtraArgs:
  """Proximal step of the column group-lasso penalty ``strength · Σ_j ‖θ_{:,j}‖₂``.

  Args:
    strength: λ >= 0; may be traced (a grid of λ trains in one program).
      ``0``, concrete or traced, leaves the updates untouched (bit for bit);
      a traced negative or non-finite λ gives NaN updates on the penalised
      leaves.
    learning_rate: the optimiser's learning rate (float or optax schedule):
      the threshold of a step is ``lr · λ``.
    mask: which leaves are penalised (default
      :func:`htsgd_jax.columns.hidden_layer_mask`: hidden kernels, no biases,
      no classifier, no first conv), a bool pytree or a callable.
    conv_column: ``"filter"`` or ``"kernel"``.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose state counts steps
    (for learning-rate schedules).

  Example:
    >>> import optax
    >>> params = {"hidden_0": {"kernel": jnp.array([[3.0, 0.03], [4.0, 0.04]])},
    ...           "classifier": {"kernel": jnp.ones((2, 2))}}
    >>> tx = optax.chain(optax.sgd(0.1), group_lasso(1.0, 0.1))
    >>> grads = jax.tree.map(jnp.zeros_like, params)
    >>> updates, _ = tx.update(grads, tx.init(params), params)
    >>> new = optax.apply_updates(params, updates)
    >>> new["hidden_0"]["kernel"][:, 1].tolist()  # norm 0.05 < lr·λ = 0.1: removed
    [0.0, 0.0]
  """
  stable.check_scale(strength, name="group lasso strength")
  columns_lib.check_conv_column(conv_column)
  if not callable(learning_rate):
    stable.check_scale(learning_rate, name="learning_rate")
  skip = stable.is_concrete(strength) and float(strength) == 0.0

  def init_fn(params):
    del params
    return optax.ScaleByScheduleState(count=jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    new_state = optax.ScaleByScheduleState(count=optax.safe_increment(state.count))
    if skip:
      return updates, new_state
    if params is None:
      raise ValueError("group_lasso needs the parameters: call update(updates, state, params).")
    lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
    lam = jnp.asarray(strength, jnp.float32)
    threshold = jnp.asarray(lr, jnp.float32) * lam
    valid = (lam >= 0) & jnp.isfinite(lam)
    chosen = jax.tree.leaves(columns_lib.resolve_mask(mask, params))
    leaves, treedef = jax.tree.flatten(updates)
    out = []
    for u, p, use in zip(leaves, jax.tree.leaves(params), chosen):
      if use:
        shrunk = shrink_columns(p + u, jnp.where(valid, threshold, 0.0), conv_column)
        # p + (shrunk - p) is exactly shrunk where shrunk is 0: removed units stay exact zeros.
        # A traced λ of 0 passes the updates through untouched: plain SGD, bit for bit.
        u = jnp.where(threshold > 0, shrunk - p, u)
        u = jnp.where(valid, u, jnp.nan).astype(u.dtype)
      out.append(u)
    return jax.tree.unflatten(treedef, out), new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
