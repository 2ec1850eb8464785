"""What the equal-accuracy networks cost beyond size: robustness, generalisation gap, spectra.

For every run of ``experiments.compare``, its full network and its smallest
network within Δ (masked: the compact network's logits) are measured:

* robust accuracy under PGD (L∞, :func:`htsgd_jax.robust_accuracies`) at the
  preset's ε grid, on a fixed random subset of the test set;
* the generalisation gap, train − test accuracy;
* per hidden layer, the largest singular value of its weight matrix (the
  layer's Lipschitz constant) and the top unit's share of its squared norm —
  the few sensitive directions that structured compressibility may create
  (Barsbey et al., arXiv:2507.17725).
"""

from __future__ import annotations

import jax
import numpy as np

from experiments.analysis import apply_fn
from experiments.runs import FinishedRun
from htsgd_jax import columns as columns_lib
from htsgd_jax import robustness
from htsgd_jax.data import Dataset
from htsgd_jax.program import evaluate, over_runs, runs_in_a_loop, stack

NETWORKS = ("full", "smallest")
PGD_STEPS = 10
SUBSET_SEED = 0  # the attacked test examples: the same for every run and method


def attacked_subset(dataset: Dataset, examples: int) -> np.ndarray:
  """Indices of the attacked test examples: a fixed random subset (all if fewer).

  Example:
    >>> from htsgd_jax.data import load_dataset
    >>> digits = load_dataset("digits")
    >>> len(attacked_subset(digits, 100)), len(attacked_subset(digits, 10**6))
    (100, 500)
  """
  n = len(dataset.y_test)
  if examples >= n:
    return np.arange(n)
  return np.sort(np.random.default_rng(SUBSET_SEED).permutation(n)[:examples])


def layer_spectra(params, conv_column: str = "filter") -> dict[str, tuple[float, float]]:
  """Per hidden layer: (largest singular value, top unit's share of the squared norm).

  Example:
    >>> p = {"hidden_0": {"kernel": np.array([[3.0, 0.0], [0.0, 1.0]])},
    ...      "classifier": {"kernel": np.ones((2, 2))}}
    >>> layer_spectra(p)
    {'hidden_0': (3.0, 0.9)}
  """
  spectra = {}
  mask = columns_lib.hidden_layer_mask(params)
  for (path, leaf), use in zip(
    jax.tree_util.tree_flatten_with_path(params)[0], jax.tree.leaves(mask)
  ):
    if not use:
      continue
    matrix = np.asarray(columns_lib.as_columns(leaf, conv_column), np.float64)
    energy = (matrix**2).sum(0)
    spectra[columns_lib.path_names(path)[0]] = (
      float(np.linalg.norm(matrix, 2)),
      float(energy.max() / max(energy.sum(), 1e-300)),
    )
  return spectra


def measure(
  trained: list[FinishedRun],
  smallest: list,
  dataset: Dataset,
  eps: tuple[float, ...],
  examples: int,
) -> list[dict]:
  """One row per run: robust accuracy (%) at 0 and each ε, train accuracy and spectra, per network.

  ε = 0 is the clean accuracy on the attacked subset: the curves' first point.
  """
  eps = (0.0, *eps)
  cfg = trained[0].config
  apply = apply_fn(cfg, dataset.num_classes)
  subset = attacked_subset(dataset, examples)
  x, y = dataset.x_test[subset], dataset.y_test[subset]
  train_accuracy = jax.jit(
    over_runs(
      lambda p: evaluate(apply, p, dataset.x_train, dataset.y_train, cfg.eval_batch_size)[1],
      (0,),
      runs_in_a_loop(trained[0].params),
    )
  )
  rows = [dict(method=t.method, seed=t.seed, strength=t.strength) for t in trained]
  for network, params in zip(NETWORKS, ([t.params for t in trained], smallest)):
    robust = robustness.robust_accuracies(
      apply, params, x, y, eps, attack="pgd", steps=PGD_STEPS, batch_size=cfg.eval_batch_size
    )
    train = np.asarray(train_accuracy(stack(params)))
    for i, row in enumerate(rows):
      row[f"{network}_train_accuracy"] = float(train[i])
      for e, r in zip(eps, robust[i]):
        row[f"{network}_robust_{e:g}"] = 100 * float(r)
      for layer, (sigma, share) in layer_spectra(params[i], cfg.conv_column).items():
        row[f"{network}_{layer}_sigma_max"] = sigma
        row[f"{network}_{layer}_top_share"] = share
  return rows
