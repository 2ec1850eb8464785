"""The noise types: how the α-stable noise is laid over a hidden layer's columns.

Imports neither JAX nor Flax: the run configuration (:mod:`htsgd_jax.config`)
checks a noise type before anything compiles, and the optax transform
(:mod:`htsgd_jax.noise`) draws it.
"""

# The authors' iterate_noise types; 0 (no noise) is plain SGD, which the config also takes.
DESCRIPTIONS = {
  1: "one scalar per column",
  2: "i.i.d. entries",
  3: "sub-Gaussian vector per column",
}
NOISE_TYPES = tuple(DESCRIPTIONS)


def described(zero: str | None = None) -> str:
  """The types as an error message lists them, with 0 first when ``zero`` says what it is.

  Example:
    >>> described("no noise")  # doctest: +ELLIPSIS
    '0 (no noise), 1 (one scalar per column), 2 (i.i.d. entries) or 3 (...)'
  """
  items = ([f"0 ({zero})"] if zero else []) + [f"{k} ({v})" for k, v in DESCRIPTIONS.items()]
  return ", ".join(items[:-1]) + " or " + items[-1]
