"""Which parameters are "hidden layers", and what their columns are.

The paper's objects are the weight matrices of hidden layers, viewed as
columns: one column per hidden unit, holding that unit's incoming weights.
With Flax's layouts this is a plain reshape of each kernel:

* Dense kernel ``(fan_in, n)``: column ``j`` is ``kernel[:, j]``.
* Conv kernel ``(kh, kw, c_in, c_out)``:

  - ``conv_column="filter"``: column ``j`` is the filter ``kernel[..., j]``,
    i.e. ``kernel.reshape(kh * kw * c_in, c_out)``;
  - ``conv_column="kernel"``: one column per ``(c_in, c_out)`` pair,
    ``kernel.reshape(kh * kw, c_in * c_out)``.

Hidden layers by default (:func:`hidden_layer_mask`): every leaf named
``kernel`` with at least two dimensions, except the classifier (the module
named ``classifier``, or else the last kernel in natural order) and the first
convolution, as in the authors' code. Biases and norm scales are 1-D and never
selected. Users with other layouts pass their own mask.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal

import jax
import numpy as np

ConvColumn = Literal["filter", "kernel"]
Mask = Any | Callable[[Any], Any]
CLASSIFIER_NAME = "classifier"


def check_conv_column(conv_column: str) -> None:
  """Raises ``ValueError`` unless ``conv_column`` is ``"filter"`` or ``"kernel"``.

  Example:
    >>> check_conv_column("filter")
    >>> check_conv_column("row")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: conv_column must be 'filter' (one column per output filter) or 'kernel' ...
  """
  if conv_column not in ("filter", "kernel"):
    raise ValueError(
      f"conv_column must be 'filter' (one column per output filter) or"
      f" 'kernel' (one per input/output channel pair); got {conv_column!r}."
    )


def columns_shape(shape: tuple[int, ...], conv_column: ConvColumn = "filter") -> tuple[int, int]:
  """Returns ``(entries_per_column, n_columns)`` of a kernel's matrix view.

  Example:
    >>> columns_shape((784, 100))
    (784, 100)
    >>> columns_shape((3, 3, 16, 32)), columns_shape((3, 3, 16, 32), "kernel")
    ((144, 32), (9, 512))
  """
  check_conv_column(conv_column)
  if len(shape) < 2:
    raise ValueError(f"a column view needs a kernel of rank >= 2; got shape {shape}.")
  if len(shape) == 2 or conv_column == "filter":
    return int(np.prod(shape[:-1])), int(shape[-1])
  return int(np.prod(shape[:-2])), int(shape[-2] * shape[-1])


def as_columns(kernel, conv_column: ConvColumn = "filter"):
  """Reshapes a kernel into its ``(entries_per_column, n_columns)`` matrix.

  Example:
    >>> import numpy as np
    >>> as_columns(np.zeros((3, 3, 4, 8))).shape
    (36, 8)
  """
  return kernel.reshape(columns_shape(kernel.shape, conv_column))


def natural_key(path) -> list:
  """Sort key of a leaf path that orders ``Dense_10`` after ``Dense_9``.

  Example:
    >>> sorted(["Dense_10", "Dense_9"], key=lambda name: natural_key([name]))
    ['Dense_9', 'Dense_10']
  """
  parts = []
  for entry in path:
    name = str(getattr(entry, "key", getattr(entry, "idx", entry)))
    parts.append([int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)])
  return parts


def _leaf_name(path) -> str:
  names = path_names(path)
  return names[-1] if names else ""


def path_names(path) -> list[str]:
  """The names along a ``tree_flatten_with_path`` key path.

  A Flax NNX variable's ``.value`` (how ``nnx.Optimizer`` hands a state to
  ``init``) is not a name: ``hidden_0/kernel.value`` is ``hidden_0/kernel``.

  Example:
    >>> path = jax.tree_util.tree_flatten_with_path({"hidden_0": {"kernel": 0}})[0][0][0]
    >>> path_names(path), path_name(path)
    (['hidden_0', 'kernel'], 'hidden_0/kernel')
  """
  return [
    str(getattr(p, "key", getattr(p, "name", p)))
    for p in path
    if not (isinstance(p, jax.tree_util.GetAttrKey) and p.name == "value")
  ]


def path_name(path) -> str:
  """A leaf's '/'-joined path, as used in records and pruning reports."""
  return "/".join(path_names(path))


def hidden_layer_mask(params) -> Any:
  """Returns a bool pytree: True for the weight kernels of hidden layers.

  Selected: leaves named ``kernel`` of rank >= 2. Excluded: the classifier
  (any leaf under a module named ``classifier``; if no module has that name,
  the last kernel in natural path order, e.g. ``Dense_10`` after ``Dense_9``)
  and the first convolution (rank-4 kernel) in natural order.

  Example:
    >>> import numpy as np
    >>> p = {"hidden_0": {"kernel": np.zeros((4, 8))},
    ...      "classifier": {"kernel": np.zeros((8, 2)), "bias": np.zeros(2)}}
    >>> hidden_layer_mask(p)
    {'classifier': {'bias': False, 'kernel': False}, 'hidden_0': {'kernel': True}}
  """
  leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
  kernels = [
    (i, path)
    for i, (path, leaf) in enumerate(leaves)
    if _leaf_name(path) == "kernel" and np.ndim(leaf) >= 2
  ]
  kernels.sort(key=lambda ip: natural_key(ip[1]))
  named = any(CLASSIFIER_NAME in path_names(path) for _, path in kernels)
  excluded = set()
  if named:
    excluded |= {i for i, path in kernels if CLASSIFIER_NAME in path_names(path)}
  elif kernels:
    excluded.add(kernels[-1][0])
  convs = [i for i, _ in kernels if np.ndim(leaves[i][1]) == 4]
  if convs:
    excluded.add(convs[0])
  chosen = {i for i, _ in kernels} - excluded
  return jax.tree_util.tree_unflatten(treedef, [i in chosen for i in range(len(leaves))])


def resolve_mask(mask: Mask | None, params) -> Any:
  """Turns ``None`` (the default rule), a callable or a bool pytree into a bool pytree.

  Example:
    >>> resolve_mask(lambda p: {"w": True}, {"w": 0.0})
    {'w': True}
  """
  if mask is None:
    return hidden_layer_mask(params)
  if callable(mask):
    return mask(params)
  return mask
