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

import importlib
import importlib.util

# Public name -> the module that defines it. Imported on first use (PEP 562),
# so that reading a config or answering a command's --help never imports JAX.
_EXPORTS = {
  "as_columns": "columns",
  "columns_shape": "columns",
  "hidden_layer_mask": "columns",
  "PruningSearch": "compression",
  "fine_tune": "finetune",
  "analyze": "compression",
  "search_prunable": "compression",
  "HeavyTailedNoiseState": "noise",
  "column_noise": "noise",
  "heavy_tailed_noise": "noise",
  "noisy_sgd": "noise",
  "group_lasso": "proximal",
  "shrink_columns": "proximal",
  "CompactNetwork": "compact",
  "LayerPruning": "pruning",
  "column_norms": "pruning",
  "columns_to_prune": "pruning",
  "compact_conv": "compact",
  "compact_dense": "compact",
  "conv_cost": "compact",
  "dense_apply": "compact",
  "dense_cost": "compact",
  "fraction_pruned": "pruning",
  "keep_top_error": "pruning",
  "prune": "pruning",
  "relative_error": "pruning",
  "robust_accuracies": "robustness",
  "robust_accuracy": "robustness",
  "positive_stable": "stable",
  "sub_gaussian_stable": "stable",
  "symmetric_stable": "stable",
  "hill": "tail_index",
  "mohammadi": "tail_index",
}

__version__ = "0.1.0"

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
  if name in _EXPORTS:
    value = getattr(importlib.import_module(f"htsgd_jax.{_EXPORTS[name]}"), name)
    globals()[name] = value  # later lookups skip this function
    return value
  if importlib.util.find_spec(f"htsgd_jax.{name}") is not None:  # htsgd_jax.models, ...
    return importlib.import_module(f"htsgd_jax.{name}")
  raise AttributeError(f"module 'htsgd_jax' has no attribute {name!r}")


def __dir__() -> list[str]:
  return sorted({*globals(), *_EXPORTS})
