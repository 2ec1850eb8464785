"""The paper's compression analysis of trained networks, a batch of seeds at once.

For each run (params stacked along a leading seed axis and ``vmap``-ped; convolutions on
a CPU one run at a time, :func:`htsgd_jax.program.over_runs`):

* the paper's metric: prune each hidden layer's smallest columns until the
  removed part holds ``fraction`` (0.1) of its squared Frobenius norm; report
  the fraction of parameters removed (classifier excluded), the pruned
  network's train and test accuracy, and ``‖Θ − Θ_pruned‖_F / ‖Θ‖_F``;
* a pruning curve: test accuracy after removing a fixed fraction of columns
  (0.0, 0.1, …, 1.0) in every hidden layer;
* heavy-tail diagnostics of the first hidden layer: Hill's estimate on its
  column norms, Mohammadi et al.'s estimate on its entries.

And the question a user asks, :func:`search_prunable`: how many hidden units
(smallest norms first) can go while accuracy stays above a target?
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from htsgd_jax import columns as columns_lib
from htsgd_jax import pruning, tail_index
from htsgd_jax.data import Dataset
from htsgd_jax.program import evaluate, over_runs, runs_in_a_loop, stack

CURVE_FRACTIONS = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))


def first_hidden_kernel(params, conv_column: str = "filter"):
  """The first hidden layer's column matrix (natural order), or None.

  Example:
    >>> p = {"hidden_0": {"kernel": np.ones((3, 4))}, "classifier": {"kernel": np.ones((4, 2))}}
    >>> first_hidden_kernel(p).shape
    (3, 4)
  """
  mask = columns_lib.hidden_layer_mask(params)
  chosen = [
    (path, leaf)
    for (path, leaf), use in zip(
      jax.tree_util.tree_flatten_with_path(params)[0], jax.tree.leaves(mask)
    )
    if use
  ]
  if not chosen:
    return None
  chosen.sort(key=lambda pl: columns_lib.natural_key(pl[0]))
  return columns_lib.as_columns(np.asarray(chosen[0][1]), conv_column)


def analyze(
  apply_fn: Callable,
  params_list: Sequence[Any],
  dataset: Dataset,
  fraction: float = 0.1,
  curve_fractions: Sequence[float] = CURVE_FRACTIONS,
  conv_column: str = "filter",
  eval_batch_size: int = 2000,
) -> list[dict[str, Any]]:
  """Compression metrics for runs that share one architecture.

  Args:
    apply_fn: ``apply_fn(params, x) -> logits``.
    params_list: one parameter pytree per run.
    dataset: the data the runs were trained on.
    fraction: the energy fraction of the paper's criterion.
    curve_fractions: column fractions for the pruning curve (``()`` to skip).
    conv_column: ``"filter"`` or ``"kernel"``.
    eval_batch_size: evaluation batch size.

  Returns:
    One dict per run: ``fraction_pruned``, ``pruned_train_accuracy``,
    ``pruned_test_accuracy``, ``relative_error``, ``columns_pruned`` (per
    layer), ``curve`` (list of ``[fraction, test accuracy]``),
    ``hill_column_norms``, ``mohammadi_weights``, ``column_norms`` and
    ``top_column_energy`` (first hidden layer; the last is the largest
    column's share of the layer's squared Frobenius norm: near 1, one
    column dominates and the 10% rule prunes all the others).

  Example:
    >>> from htsgd_jax.data import load_dataset
    >>> from htsgd_jax.training import TrainConfig, train
    >>> ds = load_dataset("digits")
    >>> run = train(TrainConfig(dataset="digits", width=32, lr=0.1, max_steps=20,
    ...                         eval_every=10, batch_size=100), ds, progress=False)
    >>> apply = lambda p, x: run_model.apply({"params": p}, x)
    >>> from htsgd_jax.models import FCN
    >>> run_model = FCN(width=32, num_classes=10)
    >>> out = analyze(apply, [run.params], ds, curve_fractions=(0.0, 0.5))
    >>> 0.0 <= out[0]["fraction_pruned"] <= 1.0, len(out[0]["curve"])
    (True, 2)
  """
  stacked = stack(params_list)
  loop = runs_in_a_loop(stacked)
  data = tuple(
    jnp.asarray(a) for a in (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test)
  )

  @jax.jit
  def energy_rule(params, data):
    def one(p):
      pruned, layers = pruning.prune(p, fraction, "energy", conv_column=conv_column)
      _, train_acc = evaluate(apply_fn, pruned, data[0], data[1], eval_batch_size)
      _, test_acc = evaluate(apply_fn, pruned, data[2], data[3], eval_batch_size)
      per_layer = {k: layer.n_pruned / layer.n_columns for k, layer in layers.items()}
      return (
        pruning.fraction_pruned(p, layers),
        train_acc,
        test_acc,
        pruning.relative_error(p, pruned),
        per_layer,
      )

    return over_runs(one, (0,), loop)(params)

  frac, train_acc, test_acc, rel_err, per_layer = jax.device_get(energy_rule(stacked, data))
  curve = []
  for f in curve_fractions:

    @jax.jit
    def count_rule(params, data, f=float(f)):
      def one(p):
        pruned, _ = pruning.prune(p, f, "count", conv_column=conv_column)
        return evaluate(apply_fn, pruned, data[2], data[3], eval_batch_size)[1]

      return over_runs(one, (0,), loop)(params)

    curve.append(np.asarray(count_rule(stacked, data)))

  out = []
  for i, params in enumerate(params_list):
    kernel = first_hidden_kernel(params, conv_column)
    norms = np.linalg.norm(kernel, axis=0) if kernel is not None else np.array([])
    out.append(
      dict(
        fraction_pruned=float(frac[i]),
        pruned_train_accuracy=float(train_acc[i]),
        pruned_test_accuracy=float(test_acc[i]),
        relative_error=float(rel_err[i]),
        columns_pruned={k: float(v[i]) for k, v in per_layer.items()},
        curve=[[float(f), float(c[i])] for f, c in zip(curve_fractions, curve)],
        hill_column_norms=_safe(tail_index.hill, norms),
        mohammadi_weights=_safe(tail_index.mohammadi, kernel),
        column_norms=norms.tolist(),
        top_column_energy=float((norms**2).max() / max((norms**2).sum(), 1e-30))
        if norms.size
        else float("nan"),
      )
    )
  return out


def _safe(estimator, x) -> float:
  try:
    return float(estimator(x))
  except (ValueError, TypeError):
    return float("nan")


# Fractions of units removed for the accuracy-vs-size curve: finer where the
# smallest networks lie.
SEARCH_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.925, 0.95, 0.96, 0.97,
               0.98, 0.99, 0.995, 1.0)  # fmt: skip
# Accuracies are float32 percentages: one that equals its target up to rounding passes.
ACCURACY_TOLERANCE = 1e-4


class PruningSearch(NamedTuple):
  """What :func:`search_prunable` found, per run (rows) and target (columns).

  Attributes:
    units: ``(runs, targets)``: the most units removed from every hidden layer
      with accuracy >= the target at every grid point up to it; -1 where even
      the unpruned network misses the target.
    accuracy: ``(runs, targets)``: accuracy (percent) with ``units`` removed
      (the unpruned accuracy where ``units`` is -1).
    grid_units: ``(points,)``: units removed at the curve's points.
    curve: ``(runs, points)``: accuracy at ``grid_units``.
    n_units: the widest hidden layer's width (the fractions' denominator).
  """

  units: np.ndarray
  accuracy: np.ndarray
  grid_units: np.ndarray
  curve: np.ndarray
  n_units: int


def without_units(params, units, n_units: int, conv_column: str = "filter"):
  """``params`` with the ``units`` smallest-norm units of every hidden layer removed (zeroed).

  ``units`` may be traced; ``n_units`` is the widest hidden layer's width.

  Example:
    >>> p = {"hidden_0": {"kernel": jnp.array([[1.0, 3.0, 2.0]])},
    ...      "classifier": {"kernel": jnp.ones((3, 2))}}
    >>> without_units(p, 2, 3)["hidden_0"]["kernel"].tolist()
    [[0.0, 3.0, 0.0]]
  """
  # k + 1/2 units' worth: the count rule's floor then gives exactly k, whatever the rounding.
  fraction = jnp.minimum((jnp.asarray(units, jnp.float32) + 0.5) / n_units, 1.0)
  return pruning.prune(params, fraction, "count", conv_column=conv_column)[0]


def search_prunable(
  apply_fn: Callable,
  params_list: Sequence[Any],
  x,
  y,
  targets,
  grid: Sequence[float] = SEARCH_GRID,
  conv_column: str = "filter",
  eval_batch_size: int = 2000,
) -> PruningSearch:
  """The largest number of hidden units that can go while accuracy stays >= a target.

  Units go smallest column norm first, the same number from every hidden
  layer (the count rule of :func:`htsgd_jax.prune`). Accuracy is not
  monotone in the units removed, so "can go" means: removing more and more
  units, stop at the first count that falls below the target. It is found
  in two passes, all runs at once (``vmap``): accuracy on a grid of
  fractions (the accuracy-vs-size curve), then a bisection between the last
  grid point that passes and the first that fails, to a single unit.

  Args:
    apply_fn: ``apply_fn(params, x) -> logits``.
    params_list: one parameter pytree per run (one architecture).
    x, y: the data to judge accuracy on (a validation split when choosing
      hyperparameters, the test set when reporting).
    targets: ``(runs, targets)`` accuracies (percent); or a function of the
      unpruned accuracies ``(runs,)`` that returns them (e.g. each network's
      own accuracy minus 1 point), which the curve's first point measures, so
      no separate evaluation pass is needed.
    grid: fractions of units removed for the curve; must start at 0.
    conv_column: ``"filter"`` or ``"kernel"``.
    eval_batch_size: evaluation batch size.

  Example:
    >>> from htsgd_jax.data import load_dataset
    >>> from htsgd_jax.models import FCN
    >>> from htsgd_jax.training import TrainConfig, train
    >>> ds = load_dataset("digits")
    >>> run = train(TrainConfig(dataset="digits", width=64, lr=0.1, max_steps=100,
    ...                         eval_every=50, batch_size=100), ds, progress=False)
    >>> model = FCN(width=64, num_classes=10)
    >>> def apply(p, x):
    ...   return model.apply({"params": p}, x)
    >>> found = search_prunable(apply, [run.params], ds.x_test, ds.y_test, [[50.0]])
    >>> bool(found.accuracy[0, 0] >= 50.0), 0 < int(found.units[0, 0]) < 64
    (True, True)
  """
  if not grid or grid[0] != 0.0:
    raise ValueError(f"the grid of fractions must start at 0 (the unpruned network); got {grid}.")
  stacked = stack(params_list)
  runs = len(params_list)
  n_units = max(
    columns_lib.columns_shape(np.shape(leaf), conv_column)[1]
    for leaf, use in zip(
      jax.tree.leaves(params_list[0]),
      jax.tree.leaves(columns_lib.hidden_layer_mask(params_list[0])),
    )
    if use
  )
  x, y = jnp.asarray(x), jnp.asarray(y)

  @jax.jit
  def accuracy_without(params, units):
    def one(p, k):
      pruned = without_units(p, k, n_units, conv_column)
      return evaluate(apply_fn, pruned, x, y, eval_batch_size)[1]

    return over_runs(one, (0, 0), runs_in_a_loop(params))(params, units)

  def accuracy_at(units) -> np.ndarray:
    return np.asarray(accuracy_without(stacked, jnp.asarray(units, jnp.float32)))

  grid_units = np.unique(np.round(np.asarray(grid) * n_units).astype(int))
  curve = np.stack([accuracy_at(np.full(runs, k)) for k in grid_units], axis=1)
  if callable(targets):
    targets = targets(curve[:, 0])
  targets = np.asarray(targets, float).reshape(runs, -1)
  units = np.empty(targets.shape, int)
  accuracy = np.empty(targets.shape)
  for t in range(targets.shape[1]):
    passes = curve >= targets[:, t : t + 1] - ACCURACY_TOLERANCE
    first_fail = np.where(passes.all(1), len(grid_units), np.argmin(passes, axis=1))
    ok = first_fail > 0
    lo = np.where(ok, grid_units[np.maximum(first_fail - 1, 0)], -1)
    hi = np.where(
      first_fail < len(grid_units),
      grid_units[np.minimum(first_fail, len(grid_units) - 1)],
      n_units + 1,
    )
    lo_acc = np.where(ok, curve[np.arange(runs), np.maximum(first_fail - 1, 0)], curve[:, 0])
    while True:
      open_ = ok & (hi - lo > 1)
      if not open_.any():
        break
      mid = np.where(open_, (lo + hi) // 2, 0)
      acc = accuracy_at(mid)
      up = open_ & (acc >= targets[:, t] - ACCURACY_TOLERANCE)
      down = open_ & ~up
      lo, lo_acc = np.where(up, mid, lo), np.where(up, acc, lo_acc)
      hi = np.where(down, mid, hi)
    units[:, t], accuracy[:, t] = lo, lo_acc
  return PruningSearch(units, accuracy, grid_units, curve, int(n_units))
