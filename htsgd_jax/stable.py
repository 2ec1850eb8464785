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

Numerical safety: uniform angles exactly at ``±pi/2`` and exponential draws
exactly at 0 are clamped to the nearest grid point of the underlying uniform
draw (about ``finfo.eps``), so no NaN is produced; float16/bfloat16 requests
are computed in float32 and cast. Values beyond the dtype's range (which only
happens for small ``alpha``, e.g. ~1e-4 of draws at ``alpha = 0.1`` in
float32) are the genuine heavy tail and come back as ``±inf``.

``alpha`` and ``scale`` may be traced (e.g. ``vmap``-ped over a sweep of α);
concrete values are validated and raise ``ValueError``.
"""

from __future__ import annotations

import math
from typing import Sequence

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
        f"{name} must lie in ({low}, {high}] (the tail index of an α-stable"
        f" law); got {shown}.")


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


def _angle_and_exponential(key, shape, dtype):
  """Returns (cos V, sin V, V, W) with V ~ U(-pi/2, pi/2), W ~ Exp(1), clamped."""
  k_v, k_w = jax.random.split(key)
  eps = jnp.finfo(dtype).eps
  u = jax.random.uniform(k_v, shape, dtype)  # [0, 1)
  v = (u - 0.5) * jnp.pi
  # cos(V) = sin(pi * u) is >= 0 on [0, 1], unlike cos(float(pi/2)) < 0.
  cos_v = jnp.maximum(jnp.sin(jnp.pi * u), eps)
  w = jnp.maximum(jax.random.exponential(k_w, shape, dtype), eps)
  return cos_v, v, w


def symmetric_stable(key: jax.Array, shape: Shape = (), alpha=2.0, scale=1.0,
                     dtype=jnp.float32) -> jax.Array:
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
  cos_v, v, w = _angle_and_exponential(key, tuple(shape), cdtype)
  # X = sin(aV) / cos(V)^(1/a) * (cos((1-a)V) / W)^((1-a)/a)
  # |(1-a)V| <= pi/2 for a in (0, 2], so cos((1-a)V) >= 0; clamp its rounding.
  cos_rest = jnp.maximum(jnp.cos((1.0 - alpha) * v), 0.0)
  x = (jnp.sin(alpha * v) / cos_v ** (1.0 / alpha)
       * (cos_rest / w) ** ((1.0 - alpha) / alpha))
  return (jnp.asarray(scale, cdtype) * x).astype(out_dtype)


def positive_stable(key: jax.Array, shape: Shape = (), alpha=0.5, scale=1.0,
                    dtype=jnp.float32) -> jax.Array:
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
  _, v, w = _angle_and_exponential(key, tuple(shape), cdtype)
  eps = jnp.finfo(cdtype).eps
  u = jnp.clip(v + jnp.pi / 2, eps, jnp.pi * (1 - eps))  # U ~ U(0, pi)
  is_one = alpha >= 1.0
  a = jnp.where(is_one, 0.5, alpha)  # a safe value where the law is degenerate
  log_sin_au = jnp.log(jnp.sin(a * u))
  log_a = ((log_sin_au - jnp.log(jnp.sin(u))) / a
           + (1 - a) / a * (jnp.log(jnp.sin((1 - a) * u)) - log_sin_au - jnp.log(w)))
  x = jnp.where(is_one, 1.0, jnp.exp(log_a))
  return (jnp.asarray(scale, cdtype) * x).astype(out_dtype)


def sub_gaussian_stable(key: jax.Array, shape: Shape, alpha=2.0, scale=1.0,
                        axis: int = -1, dtype=jnp.float32) -> jax.Array:
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
  mixing = positive_stable(k_a, mixing_shape, alpha / 2,
                           scale=2 * jnp.asarray(scale, cdtype) ** 2, dtype=cdtype)
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
    return dict(alpha=float(alpha), beta=1.0,
                scale=float(scale) * math.cos(math.pi * alpha / 2) ** (1 / alpha))
  raise ValueError(f"law must be 'symmetric' or 'positive'; got {law!r}.")
