"""Jitted samplers for α-stable laws.

Conventions (used everywhere in htsgd_jax):

* ``symmetric_stable(key, shape, alpha, scale)`` draws X with characteristic
  function ``E exp(i t X) = exp(-|scale * t|**alpha)``. This is
  ``scipy.stats.levy_stable(alpha, beta=0, scale=scale)`` (scipy's default
  S1 parametrisation). At ``alpha == 2`` it is therefore ``N(0, 2 * scale**2)``,
  not ``N(0, scale**2)``; at ``alpha == 1`` it is Cauchy(0, scale).
* ``positive_stable(key, shape, alpha, scale)`` for ``0 < alpha <= 1`` draws a
  totally skewed positive A with Laplace transform
  ``E exp(-s A) = exp(-(scale * s)**alpha)``. In scipy this is
  ``levy_stable(alpha, beta=1, scale=scale * cos(pi * alpha / 2)**(1 / alpha))``
  for ``alpha < 1``; ``alpha == 1`` is the point mass at ``scale``.
* ``sub_gaussian_stable(key, shape, alpha, scale, axis)`` draws vectors along
  ``axis`` as ``sqrt(A) * G`` with G standard normal and
  ``A = positive_stable(alpha / 2, scale=2 * scale**2)``, so that every
  marginal is ``symmetric_stable(alpha, scale)``: the three samplers share one
  scale convention, and at ``alpha == 2`` the vector is ``N(0, 2 scale² I)``.

Algorithms: Chambers, Mallows & Stuck (1976) for the symmetric law; Kanter
(1975)'s representation, evaluated in log space, for the positive law (it has
no discontinuity at ``alpha -> 1``, unlike skewed CMS in the S1 form).

Exact far tail: the tail of an α-stable law comes from the angle's approach
to its singular end (and, for ``alpha < 1``, from small exponential draws).
Each draw takes two random words (:func:`random_words`); the angle's distance
to the singular end and the exponential's value are built from them with the
dtype's full relative precision (:func:`top_bit_and_fraction`), not from a
``2**-23`` uniform grid, and every factor that vanishes is computed from that
distance directly. The smallest angle is ``2**-44`` of its range, so the law
is exact except in its outermost ~1e-13 of probability, far beyond what 1e10
draws resolve (uint64 words for float64 reach ``2**-76``). Tests count draws above
far thresholds against ``P(|X| > t) ~ 2 Gamma(alpha) sin(pi alpha / 2) / pi
* t**-alpha``. Nothing is clamped and no NaN is produced; float16/bfloat16
requests are computed in float32 and cast. Values beyond the dtype's range
(only for small ``alpha``, e.g. ~1e-4 of draws at ``alpha = 0.1`` in
float32, or beyond 65504 in float16) are the genuine heavy tail and come back
as ``±inf``.

``alpha`` and ``scale`` may be traced (e.g. ``vmap``-ped over a sweep of α);
concrete values are validated and raise ``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

Shape = Sequence[int]


def is_concrete(x) -> bool:
  """True unless ``x`` is a tracer (its value is unknown while tracing).

  Example:
    >>> import jax
    >>> seen = []
    >>> _ = jax.jit(lambda a: seen.append(is_concrete(a)) or a)(1.5)
    >>> is_concrete(1.5), seen
    (True, [False])
  """
  try:
    np.asarray(x)
  except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
    return False
  return True


def check_alpha(alpha, low: float = 0.0, high: float = 2.0, name: str = "alpha"):
  """Raises ``ValueError`` unless a concrete ``alpha`` lies in ``(low, high]``.

  Traced values cannot be inspected and pass through unchanged.

  Example:
    >>> check_alpha(1.5)
    >>> check_alpha(2.5)
    Traceback (most recent call last):
    ...
    ValueError: alpha must lie in (0.0, 2.0] (the tail index of an α-stable law); got 2.5.
  """
  if not is_concrete(alpha):
    return
  a = np.asarray(alpha, dtype=np.float64)
  if not np.all(np.isfinite(a)) or np.any(a <= low) or np.any(a > high):
    shown = a.item() if a.ndim == 0 else a.tolist()
    raise ValueError(
      f"{name} must lie in ({low}, {high}] (the tail index of an α-stable law); got {shown}."
    )


def check_scale(scale, name: str = "scale"):
  """Raises ``ValueError`` unless a concrete ``scale`` is finite and >= 0.

  Example:
    >>> check_scale(0.0)
    >>> check_scale(-1.0)
    Traceback (most recent call last):
    ...
    ValueError: scale must be finite and >= 0; got -1.0.
  """
  if not is_concrete(scale):
    return
  s = np.asarray(scale, dtype=np.float64)
  if not np.all(np.isfinite(s)) or np.any(s < 0):
    shown = s.item() if s.ndim == 0 else s.tolist()
    raise ValueError(f"{name} must be finite and >= 0; got {shown}.")


def _compute_dtype(dtype) -> jnp.dtype:
  dtype = jnp.dtype(dtype)
  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(f"dtype must be a floating dtype; got {dtype}.")
  # 16-bit floats lack the mantissa for the trigonometric identities below.
  return jnp.dtype(jnp.float32) if dtype.itemsize < 4 else dtype


def _prepare(alpha, scale, dtype, alpha_max: float = 2.0):
  """Validates concrete arguments; returns (output dtype, compute dtype, alpha)."""
  check_alpha(alpha, high=alpha_max)
  check_scale(scale)
  out_dtype = jnp.dtype(dtype)
  cdtype = _compute_dtype(out_dtype)
  return out_dtype, cdtype, jnp.asarray(alpha, cdtype)


def _word_dtype(cdtype) -> jnp.dtype:
  """Random words as wide as the compute dtype: uint32 for float32, uint64 for float64."""
  return jnp.dtype(jnp.uint64) if jnp.dtype(cdtype).itemsize == 8 else jnp.dtype(jnp.uint32)


def random_words(key: jax.Array, shape: Shape, dtype=jnp.float32) -> tuple[jax.Array, jax.Array]:
  """The two random words per draw that the samplers consume: (angle word, exponential word).

  Words are uint32 for float32 (and 16-bit) outputs, uint64 for float64.

  Example:
    >>> import jax
    >>> angle, exp = random_words(jax.random.key(0), (3,))
    >>> angle.shape, str(exp.dtype)
    ((3,), 'uint32')
  """
  cdtype = _compute_dtype(dtype)
  words = jax.random.bits(key, (2,) + tuple(shape), _word_dtype(cdtype))
  return words[0], words[1]


DITHER_BITS = 12


def top_bit_and_fraction(
  words: jax.Array, dtype, dither_words: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
  """Splits random words into their top bit and a uniform fraction in (0, 1].

  The fraction is ``(k + r) / 2**(b-1)`` for the other ``b - 1`` bits ``k``,
  rounded once to ``dtype``: near 0 it keeps the dtype's full relative
  precision, unlike ``jax.random.uniform``, whose values lie on a ``2**-23``
  grid. ``r`` places it inside its grid cell: ``1/2``, or the low
  ``DITHER_BITS`` bits of ``dither_words`` (the samplers pass the draw's other
  word), which takes the smallest fraction from ``2**-b`` down to
  ``2**-(b + DITHER_BITS)`` (about 1e-13 for 32-bit words). Those low bits
  barely move the other word's own fraction, so the two stay independent to
  far below anything a sample could resolve.

  Example:
    >>> import jax.numpy as jnp
    >>> top, u = top_bit_and_fraction(jnp.array([0, 2**31 + 1], jnp.uint32), jnp.float32)
    >>> top.tolist(), u.tolist() == [2.0 ** -32, 1.5 * 2.0 ** -31]
    ([False, True], True)
  """
  bits = words.dtype.itemsize * 8
  top = (words >> (bits - 1)) == 1
  rest = words & jnp.asarray((1 << (bits - 1)) - 1, words.dtype)
  if dither_words is None:
    offset = 0.5
  else:
    low = (dither_words & jnp.asarray((1 << DITHER_BITS) - 1, words.dtype)).astype(dtype)
    offset = (low + 0.5) * (2.0**-DITHER_BITS)
  return top, (rest.astype(dtype) + offset) * (2.0 ** -(bits - 1))


def _is_float32(dtype) -> bool:
  return jnp.dtype(dtype) == jnp.float32


def sin_0_to_pi(x: jax.Array) -> jax.Array:
  """``sin x`` for ``0 <= x <= pi``, keeping full relative precision near 0.

  In float32 a Taylor polynomial to ``x**13`` on ``min(x, pi - x)`` (error
  below 1e-9, so exact to float32 rounding), about 10x faster than
  ``jnp.sin`` on CPU, where XLA calls a scalar library routine. Other dtypes
  use ``jnp.sin``.

  Example:
    >>> import jax.numpy as jnp
    >>> x = jnp.array([1e-30, 0.5, 3.0])
    >>> bool(jnp.allclose(sin_0_to_pi(x), jnp.sin(x), rtol=1e-6, atol=0))
    True
  """
  if not _is_float32(x.dtype):
    return jnp.sin(x)
  y = jnp.minimum(x, jnp.pi - x)
  y2 = y * y
  # sin y = y - y**3 (1/3! - y**2 (1/5! - y**2 (... - y**2 / 13!))), innermost first.
  poly = 1 / 6227020800
  for inv_factorial in (1 / 39916800, 1 / 362880, 1 / 5040, 1 / 120, 1 / 6):
    poly = inv_factorial - y2 * poly
  return y - y * y2 * poly


def exponential_from_words(
  words: jax.Array, dtype, dither_words: jax.Array | None = None
) -> jax.Array:
  """Exp(1) draws from random words, exact at both ends.

  ``W = -log U``: the top bit picks the half of ``U ~ U(0, 1)`` and the
  fraction ``f`` (see :func:`top_bit_and_fraction`) is its distance ``h = f/2``
  to the near end, so small W (``-log1p(-h)``, a series for ``h < 1/8``) and
  large W (``-log h``) both keep full relative precision.

  Example:
    >>> import jax.numpy as jnp
    >>> w = exponential_from_words(jnp.array([0, 2**32 - 1], jnp.uint32), jnp.float32)
    >>> float(w[0]) == 2.0 ** -33, round(float(w[1]), 3)  # smallest, and log(2)
    (True, 0.693)
  """
  large, f = top_bit_and_fraction(words, dtype, dither_words)
  h = 0.5 * f  # in (0, 1/2]
  if not _is_float32(dtype):
    return jnp.where(large, -jnp.log(h), -jnp.log1p(-h))
  # One log for both ends: 1 - h is exact enough for h >= 1/8 (error < 2.2e-7
  # relative); below, the series of -log1p(-h) to h**9 (error < 1e-9).
  w = -jnp.log(jnp.where(large, h, 1 - h))
  series = 1 / 9
  for n in range(8, 0, -1):
    series = 1 / n + h * series
  return jnp.where(~large & (h < 0.125), h * series, w)


def symmetric_stable_from_words(
  angle_words: jax.Array, exponential_words: jax.Array, alpha, dtype=jnp.float32
) -> jax.Array:
  """Unit-scale SαS draws (Chambers–Mallows–Stuck) from two random words each.

  The sampler behind :func:`symmetric_stable`, exposed so that tests can
  condition on the far tail by choosing the words. With the angle
  ``V = ±(pi/2 - d)`` (sign from the top bit, ``d`` from the fraction, so
  ``d`` keeps full relative precision down to ``2**-(b + DITHER_BITS)``) and ``W ~ Exp(1)``::

    X = sin(alpha V) / cos(V)**(1/alpha) * (cos((1 - alpha) V) / W)**((1 - alpha)/alpha)

  is evaluated with ``cos V = sin d``, ``|sin(alpha V)| = sin((2 - alpha) pi/2
  + alpha d)`` and ``cos((1 - alpha) V) = sin(min(alpha, 2 - alpha) pi/2 +
  |1 - alpha| d)``: every factor that vanishes keeps its relative precision
  (also at ``alpha = 2``, where the law is Gaussian), and the powers are one
  ``exp`` of a sum of logs.

  Example:
    >>> import jax.numpy as jnp
    >>> angle = jnp.array([0, 2**31], jnp.uint32)   # d = 2**-32 * pi/2, both signs
    >>> x = symmetric_stable_from_words(angle, jnp.full(2, 2**31, jnp.uint32), 1.5)
    >>> bool(x[0] == -x[1]) and float(x[0]) > 1e6   # the far tail is reachable
    True
  """
  negative, f = top_bit_and_fraction(angle_words, dtype, exponential_words)
  alpha = jnp.asarray(alpha, dtype)
  d = (jnp.pi / 2) * f
  w = exponential_from_words(exponential_words, dtype, angle_words)
  sin_alpha_v = sin_0_to_pi((2 - alpha) * (jnp.pi / 2) + alpha * d)
  cos_rest = sin_0_to_pi(jnp.minimum(alpha, 2 - alpha) * (jnp.pi / 2) + jnp.abs(1 - alpha) * d)
  log_magnitude = (-jnp.log(sin_0_to_pi(d)) + (1 - alpha) * jnp.log(cos_rest / w)) / alpha
  x = sin_alpha_v * jnp.exp(log_magnitude)
  return jnp.where(negative, -x, x)


def positive_stable_from_words(
  angle_words: jax.Array, exponential_words: jax.Array, alpha, dtype=jnp.float32
) -> jax.Array:
  """Unit-scale positive α-stable draws (Kanter), ``0 < alpha < 1``, from two words each.

  The sampler behind :func:`positive_stable`. ``U ~ U(0, pi)`` is ``e`` or
  ``pi - e`` (top bit) with ``e`` from the fraction, so ``sin U = sin e``
  keeps full relative precision at both ends; the far tail comes from
  ``U -> pi``. In log space::

    log A = (log sin(aU) - log sin U) / a + (1 - a)/a (log sin((1 - a)U) - log sin(aU) - log W)

  Example:
    >>> import jax.numpy as jnp
    >>> a = positive_stable_from_words(jnp.array([2**31], jnp.uint32),
    ...                                jnp.array([2**31], jnp.uint32), 0.75)
    >>> float(a[0]) > 1e10   # U within 2**-32 of pi: the far tail
    True
  """
  near_pi, f = top_bit_and_fraction(angle_words, dtype, exponential_words)
  a = jnp.asarray(alpha, dtype)
  e = (jnp.pi / 2) * f
  w = exponential_from_words(exponential_words, dtype, angle_words)
  turn = jnp.where(near_pi, jnp.pi, 0.0).astype(dtype)
  # With U = pi - e: sin(aU) = sin((1 - a) pi + a e), sin((1 - a) U) = sin(a pi + (1 - a) e).
  sin_au = sin_0_to_pi((1 - a) * turn + a * e)
  sin_rest = sin_0_to_pi(a * turn + (1 - a) * e)
  log_a = (jnp.log(sin_au / sin_0_to_pi(e)) + (1 - a) * jnp.log(sin_rest / (sin_au * w))) / a
  return jnp.exp(log_a)


def symmetric_stable(
  key: jax.Array, shape: Shape = (), alpha=2.0, scale=1.0, dtype=jnp.float32
) -> jax.Array:
  """Draws symmetric α-stable (SαS) samples by Chambers–Mallows–Stuck.

  Characteristic function ``exp(-|scale t|**alpha)``; equals
  ``scipy.stats.levy_stable(alpha, 0, scale=scale)``. At ``alpha = 2`` this is
  ``N(0, 2 scale**2)``.

  Args:
    key: a PRNG key (typed or raw uint32).
    shape: output shape.
    alpha: tail index in (0, 2]; may be traced.
    scale: scale >= 0; may be traced, broadcast against ``shape``.
    dtype: floating output dtype.

  Returns:
    An array of ``shape`` and ``dtype``.

  Example:
    >>> import jax
    >>> x = symmetric_stable(jax.random.key(0), (3,), alpha=1.5)
    >>> x.shape, str(x.dtype)
    ((3,), 'float32')

  References:
    Chambers, Mallows & Stuck, "A method for simulating stable random
    variables", JASA 71 (1976).
  """
  out_dtype, cdtype, alpha = _prepare(alpha, scale, dtype)
  x = symmetric_stable_from_words(*random_words(key, shape, cdtype), alpha, cdtype)
  return (jnp.asarray(scale, cdtype) * x).astype(out_dtype)


def positive_stable(
  key: jax.Array, shape: Shape = (), alpha=0.5, scale=1.0, dtype=jnp.float32
) -> jax.Array:
  """Draws totally skewed positive α-stable samples, ``0 < alpha <= 1``.

  Laplace transform ``E exp(-s A) = exp(-(scale s)**alpha)``. For
  ``alpha < 1`` this is ``scipy.stats.levy_stable(alpha, 1,
  scale=scale * cos(pi alpha / 2)**(1/alpha))``; ``alpha = 1`` is the point
  mass at ``scale``, the limit of the family.

  Uses Kanter's representation
  ``A = (sin(a U)/sin U)^(1/(1-a)) (sin((1-a)U) / (sin(aU) W))^((1-a)/a)``
  with ``U ~ U(0, pi)``, ``W ~ Exp(1)``, computed in log space so that
  ``alpha`` close to 1 neither overflows nor loses precision.

  Args:
    key: a PRNG key.
    shape: output shape.
    alpha: index in (0, 1]; may be traced.
    scale: scale >= 0; may be traced.
    dtype: floating output dtype.

  Returns:
    Positive samples of ``shape`` and ``dtype``.

  Example:
    >>> import jax
    >>> a = positive_stable(jax.random.key(0), (4,), alpha=0.75)
    >>> bool((a > 0).all())
    True

  References:
    Kanter, "Stable densities under change of scale and total variation
    inequalities", Ann. Probab. 3 (1975).
  """
  out_dtype, cdtype, alpha = _prepare(alpha, scale, dtype, alpha_max=1.0)
  is_one = alpha >= 1.0
  a = jnp.where(is_one, 0.5, alpha)  # a safe value where the law is degenerate
  x = jnp.where(
    is_one, 1.0, positive_stable_from_words(*random_words(key, shape, cdtype), a, cdtype)
  )
  return (jnp.asarray(scale, cdtype) * x).astype(out_dtype)


def sub_gaussian_stable(
  key: jax.Array, shape: Shape, alpha=2.0, scale=1.0, axis: int = -1, dtype=jnp.float32
) -> jax.Array:
  """Draws multivariate sub-Gaussian (elliptically contoured) SαS vectors.

  Each slice along ``axis`` is one vector ``sqrt(A) * G``: G is standard
  normal, A is one ``positive_stable(alpha / 2, scale=2 scale**2)`` scalar
  shared by the whole vector. Every coordinate is marginally
  ``symmetric_stable(alpha, scale)``, but coordinates are dependent (large
  vectors are large in every coordinate) and the law is rotation invariant.

  Args:
    key: a PRNG key.
    shape: output shape.
    alpha: tail index in (0, 2]; may be traced.
    scale: marginal scale >= 0; may be traced.
    axis: the axis along which entries form one vector.
    dtype: floating output dtype.

  Returns:
    An array of ``shape`` and ``dtype``.

  Example:
    >>> import jax
    >>> x = sub_gaussian_stable(jax.random.key(0), (5, 3), alpha=1.5, axis=0)
    >>> x.shape  # three vectors of length five
    (5, 3)

  References:
    Samorodnitsky & Taqqu, "Stable Non-Gaussian Random Processes" (1994),
    Def. 2.5.1.
  """
  out_dtype, cdtype, alpha = _prepare(alpha, scale, dtype)
  shape = tuple(shape)
  axis = axis % len(shape) if shape else 0
  k_a, k_g = jax.random.split(key)
  mixing_shape = tuple(1 if i == axis else d for i, d in enumerate(shape))
  mixing = positive_stable(
    k_a, mixing_shape, alpha / 2, scale=2 * jnp.asarray(scale, cdtype) ** 2, dtype=cdtype
  )
  gauss = jax.random.normal(k_g, shape, cdtype)
  return (jnp.sqrt(mixing) * gauss).astype(out_dtype)


def scipy_levy_stable_params(law: str, alpha: float, scale: float = 1.0) -> dict:
  """Returns ``scipy.stats.levy_stable`` arguments matching one of our laws.

  Args:
    law: ``"symmetric"`` or ``"positive"``.
    alpha: tail index.
    scale: our scale.

  Returns:
    ``dict(alpha=..., beta=..., scale=...)`` for ``levy_stable(**params)``.

  Example:
    >>> scipy_levy_stable_params("positive", 0.5)["beta"]
    1.0
  """
  if law == "symmetric":
    return dict(alpha=float(alpha), beta=0.0, scale=float(scale))
  if law == "positive":
    return dict(
      alpha=float(alpha),
      beta=1.0,
      scale=float(scale) * math.cos(math.pi * alpha / 2) ** (1 / alpha),
    )
  raise ValueError(f"law must be 'symmetric' or 'positive'; got {law!r}.")
