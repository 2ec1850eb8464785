"""htsgd_jax: heavy-tailed SGD and the compressibility it buys, in JAX.

Example:
  >>> import optax, htsgd_jax
  >>> lr = 0.01
  >>> tx = optax.chain(optax.sgd(lr), htsgd_jax.heavy_tailed_noise(
  ...     alpha=1.75, sigma=0.003, learning_rate=lr, noise_type=1, key=0))
"""

from htsgd_jax.columns import as_columns, columns_shape, hidden_layer_mask
from htsgd_jax.noise import (HeavyTailedNoiseState, column_noise, heavy_tailed_noise,
                             noisy_sgd)
from htsgd_jax.stable import positive_stable, sub_gaussian_stable, symmetric_stable

__version__ = "0.1.0"

__all__ = [
    "HeavyTailedNoiseState", "as_columns", "column_noise", "columns_shape",
    "heavy_tailed_noise", "hidden_layer_mask", "noisy_sgd", "positive_stable",
    "sub_gaussian_stable", "symmetric_stable",
]
