"""Renamed :mod:`htsgd_jax.training` (``train`` is the function that trains one run).

Importing this name still works, with a ``DeprecationWarning``; it goes in 0.2.
"""

import warnings

from htsgd_jax.training import *  # noqa: F403
from htsgd_jax.training import __all__  # noqa: F401

warnings.warn(
  "htsgd_jax.train is now htsgd_jax.training; import from there.", DeprecationWarning, stacklevel=2
)
