"""The paper's compression analysis of trained networks, a batch of seeds at once.

For each run (params stacked along a leading seed axis and ``vmap``-ped):

* the paper's metric: prune each hidden layer's smallest columns until the
  removed part holds ``fraction`` (0.1) of its squared Frobenius norm; report
  the fraction of parameters removed (classifier excluded), the pruned
  network's train and test accuracy, and ``‖Θ − Θ_pruned‖_F / ‖Θ‖_F``;
* a pruning curve: test accuracy after removing a fixed fraction of columns
  (0.0, 0.1, …, 1.0) in every hidden layer;
* heavy-tail diagnostics of the first hidden layer: Hill's estimate on its
  column norms, Mohammadi et al.'s estimate on its entries.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from htsgd_jax import columns as columns_lib
from htsgd_jax import pruning, tail_index
from htsgd_jax.data import Dataset
from htsgd_jax.train import evaluate

CURVE_FRACTIONS = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))


def stack(params_list: Sequence[Any]) -> Any:
  """Stacks per-run parameter pytrees along a new leading axis.

  Example:
    >>> stack([{"w": np.zeros(2)}, {"w": np.ones(2)}])["w"].shape
    (2, 2)
  """
  return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *params_list)


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
    >>> from htsgd_jax.train import TrainConfig, train
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

    return jax.vmap(one)(params)

  frac, train_acc, test_acc, rel_err, per_layer = jax.device_get(energy_rule(stacked, data))
  curve = []
  for f in curve_fractions:

    @jax.jit
    def count_rule(params, data, f=float(f)):
      def one(p):
        pruned, _ = pruning.prune(p, f, "count", conv_column=conv_column)
        return evaluate(apply_fn, pruned, data[2], data[3], eval_batch_size)[1]

      return jax.vmap(one)(params)

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
