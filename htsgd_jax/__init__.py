"""htsgd_jax: heavy-tailed SGD and the compressibility it buys, in JAX.

Example:
  >>> import optax, htsgd_jax
  >>> lr = 0.01
  >>> tx = optax.chain(optax.sgd(lr), htsgd_jax.heavy_tailed_noise(
  ...     alpha=1.75, sigma=0.003, learning_rate=lr, noise_type=1, key=0))

  The pruning API sits beside the transforms, as in optax:

  >>> import jax.numpy as jnp
  >>> params = {"hidden_0": {"kernel": jnp.array([[3.0, 0.1], [4.0, 0.1]])},
  ...           "classifier": {"kernel": jnp.ones((2, 2))}}
  >>> pruned, layers = htsgd_jax.prune(params, fraction=0.1)
  >>> pruned["hidden_0"]["kernel"][:, 1].tolist(), int(layers["hidden_0/kernel"].n_pruned)
  ([0.0, 0.0], 1)
"""

from htsgd_jax.columns import as_columns, columns_shape, hidden_layer_mask
from htsgd_jax.compression import PruningSearch, analyze, search_prunable
from htsgd_jax.noise import HeavyTailedNoiseState, column_noise, heavy_tailed_noise, noisy_sgd
from htsgd_jax.proximal import group_lasso, shrink_columns
from htsgd_jax.pruning import (
  CompactNetwork,
  LayerPruning,
  column_norms,
  columns_to_prune,
  compact_dense,
  dense_apply,
  dense_cost,
  fraction_pruned,
  keep_top_error,
  prune,
  relative_error,
)
from htsgd_jax.stable import positive_stable, sub_gaussian_stable, symmetric_stable
from htsgd_jax.tail_index import hill, mohammadi

__version__ = "0.1.0"

__all__ = [
  "CompactNetwork",
  "HeavyTailedNoiseState",
  "PruningSearch",
  "LayerPruning",
  "analyze",
  "as_columns",
  "column_noise",
  "column_norms",
  "columns_shape",
  "columns_to_prune",
  "compact_dense",
  "dense_apply",
  "dense_cost",
  "fraction_pruned",
  "group_lasso",
  "heavy_tailed_noise",
  "hidden_layer_mask",
  "hill",
  "keep_top_error",
  "mohammadi",
  "noisy_sgd",
  "positive_stable",
  "prune",
  "relative_error",
  "search_prunable",
  "shrink_columns",
  "sub_gaussian_stable",
  "symmetric_stable",
]
