"""Column pruning of hidden layers and the paper's compression metrics.

Two rules, both on the columns of each hidden layer (see
:mod:`htsgd_jax.columns`), layer by layer:

* ``"energy"`` (the paper's criterion, ``mce`` in the authors' code): sort the
  columns by norm and remove the smallest ones while the removed part holds at
  most ``fraction`` (default 0.1) of the layer's squared Frobenius norm,
  i.e. ``‖Θ − Θ_pruned‖²_F ≤ fraction · ‖Θ‖²_F``.
* ``"count"``: remove the ``floor(fraction · n)`` smallest columns (for pruning
  curves over fractions 0.0, 0.1, …, 1.0).

The reported *fraction of parameters pruned* is the number of weights in the
removed columns over all parameters except the classifier layer, as the paper
reports (the authors' code also counts the skipped first conv as removed; we
count it as kept, a negligible difference for VGG). Everything is pure JAX, so
a batch of seeds is pruned at once with ``jax.vmap``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from htsgd_jax import columns as columns_lib
from htsgd_jax import stable

RULES = ("energy", "count")


def column_norms(kernel, conv_column: columns_lib.ConvColumn = "filter") -> jax.Array:
  """Euclidean norm of every column of a kernel.

  Example:
    >>> column_norms(jnp.array([[3.0, 0.0], [4.0, 1.0]]))
    Array([5., 1.], dtype=float32)
  """
  return jnp.linalg.norm(columns_lib.as_columns(kernel, conv_column), axis=0)


def check_fraction(fraction, name: str = "fraction") -> None:
  """Raises ``ValueError`` unless ``fraction`` lies in [0, 1] (NaN does not).

  Example:
    >>> check_fraction(2.0, "prune fraction")
    Traceback (most recent call last):
    ...
    ValueError: prune fraction must lie in [0, 1]; got 2.0.
  """
  if not 0.0 <= fraction <= 1.0:
    raise ValueError(f"{name} must lie in [0, 1]; got {fraction}.")


def columns_to_prune(norms, fraction: float = 0.1, rule: str = "energy") -> jax.Array:
  """Bool mask over columns: True for columns to remove.

  Args:
    norms: column norms, shape ``(n,)``.
    fraction: energy fraction (``rule="energy"``) or column fraction
      (``"count"``); may be traced (then it is not checked).
    rule: ``"energy"`` or ``"count"``.

  Example:
    >>> # squared norms 1, 4, 9, 86 (total 100): removing the first two takes 5%
    >>> # of the energy, adding the third would take 14% > 10%.
    >>> columns_to_prune(jnp.sqrt(jnp.array([9.0, 1.0, 86.0, 4.0])), 0.1)
    Array([False,  True, False,  True], dtype=bool)
  """
  if rule not in RULES:
    raise ValueError(f"rule must be 'energy' or 'count'; got {rule!r}.")
  if stable.is_concrete(fraction):
    check_fraction(fraction)
  n = norms.shape[-1]
  order = jnp.argsort(norms)
  rank = jnp.empty_like(order).at[order].set(jnp.arange(n))
  if rule == "count":
    return rank < jnp.floor(fraction * n + 1e-9)
  energy = jnp.sort(norms) ** 2
  cumulative = jnp.cumsum(energy) / jnp.maximum(energy.sum(), jnp.finfo(energy.dtype).tiny)
  n_pruned = jnp.sum(cumulative <= fraction)
  return rank < n_pruned


class LayerPruning(NamedTuple):
  """Per-layer outcome (arrays gain a leading axis under vmap).

  Example:
    >>> params = {"hidden_0": {"kernel": jnp.eye(4)}, "classifier": {"kernel": jnp.ones((4, 2))}}
    >>> _, layers = prune(params, 0.5, "count")
    >>> layers["hidden_0/kernel"].n_columns, int(layers["hidden_0/kernel"].n_pruned)
    (4, 2)
  """

  n_columns: int
  n_pruned: jax.Array
  weights_per_column: int


def prune(
  params,
  fraction: float = 0.1,
  rule: str = "energy",
  mask=None,
  conv_column: columns_lib.ConvColumn = "filter",
) -> tuple[Any, dict[str, LayerPruning]]:
  """Zeroes the pruned columns of every hidden layer.

  Args:
    params: parameter pytree.
    fraction: see :func:`columns_to_prune`.
    rule: ``"energy"`` or ``"count"``.
    mask: which leaves are hidden layers (default
      :func:`htsgd_jax.columns.hidden_layer_mask`).
    conv_column: ``"filter"`` or ``"kernel"``.

  Returns:
    ``(pruned_params, layers)`` where ``layers`` maps a leaf path to its
    :class:`LayerPruning`.

  Example:
    >>> p = {"hidden_0": {"kernel": jnp.array([[1.0, 0.1], [1.0, 0.1]])},
    ...      "classifier": {"kernel": jnp.ones((2, 3))}}
    >>> pruned, layers = prune(p)
    >>> pruned["hidden_0"]["kernel"]
    Array([[1., 0.],
           [1., 0.]], dtype=float32)
    >>> int(layers["hidden_0/kernel"].n_pruned)
    1
  """
  chosen = columns_lib.resolve_mask(mask, params)
  layers: dict[str, LayerPruning] = {}

  def one(path, leaf, use):
    if not use:
      return leaf
    name = columns_lib.path_name(path)
    if stable.is_concrete(leaf) and not np.isfinite(np.asarray(leaf)).all():
      raise ValueError(
        f"{name} holds non-finite weights (NaN or inf): its columns cannot be ranked by"
        " norm. Prune a finite network (a diverged run's last finite parameters, or retrain)."
      )
    d, n = columns_lib.columns_shape(leaf.shape, conv_column)
    drop = columns_to_prune(column_norms(leaf, conv_column), fraction, rule)
    layers[name] = LayerPruning(n, drop.sum(), d)
    matrix = columns_lib.as_columns(leaf, conv_column)
    return jnp.where(drop[None, :], 0, matrix).reshape(leaf.shape)

  pruned = jax.tree_util.tree_map_with_path(one, params, chosen)
  return pruned, layers


def fraction_pruned(params, layers: dict[str, LayerPruning]) -> jax.Array:
  """Removed weights / all parameters except the classifier layer.

  Example:
    >>> p = {"hidden_0": {"kernel": jnp.ones((2, 4))}, "classifier": {"kernel": jnp.ones((4, 3))}}
    >>> _, layers = prune(p, 0.5, rule="count")
    >>> float(fraction_pruned(p, layers))  # 2 of 4 columns of 2 weights, of 8
    0.5
  """
  total = sum(
    int(np.prod(leaf.shape))
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]
    if columns_lib.CLASSIFIER_NAME not in columns_lib.path_names(path)
  )
  removed = sum(layer.n_pruned * layer.weights_per_column for layer in layers.values())
  return removed / total


def relative_error(params, pruned, mask=None) -> jax.Array:
  """``‖Θ − Θ_pruned‖_F / ‖Θ‖_F`` over all hidden layers together.

  Example:
    >>> head = {"classifier": {"kernel": jnp.ones((2, 1))}}
    >>> p = {"hidden_0": {"kernel": jnp.array([[3.0, 4.0]])}, **head}
    >>> q = {"hidden_0": {"kernel": jnp.array([[0.0, 4.0]])}, **head}
    >>> round(float(relative_error(p, q)), 6)
    0.6
  """
  chosen = jax.tree.leaves(columns_lib.resolve_mask(mask, params))
  a = [x for x, c in zip(jax.tree.leaves(params), chosen) if c]
  b = [x for x, c in zip(jax.tree.leaves(pruned), chosen) if c]
  diff = sum(jnp.sum((x - y) ** 2) for x, y in zip(a, b))
  return jnp.sqrt(diff / sum(jnp.sum(x**2) for x in a))


def keep_top_error(
  params, keep_fraction: float, mask=None, conv_column: columns_lib.ConvColumn = "filter"
) -> jax.Array:
  """``‖Θ^(κn) − Θ‖_F / ‖Θ‖_F`` when only the ``κn`` largest columns are kept.

  The quantity of the paper's theorem, over all hidden layers, with
  ``κ = keep_fraction`` (``floor((1 - κ) n)`` smallest columns removed).

  Example:
    >>> head = {"classifier": {"kernel": jnp.ones((2, 1))}}
    >>> p = {"hidden_0": {"kernel": jnp.array([[3.0, 4.0]])}, **head}
    >>> round(float(keep_top_error(p, 0.5)), 6)  # drop the 3: sqrt(9 / 25)
    0.6
  """
  pruned, _ = prune(params, 1.0 - keep_fraction, "count", mask, conv_column)
  return relative_error(params, pruned, mask)
