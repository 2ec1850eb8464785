"""Tail-index estimators for weights and column norms.

* :func:`hill` — Hill (1975): for positive data with a Pareto-type tail
  ``P(X > x) ~ C x^(-α)``, ``α̂ = k / Σ_{i<k} log(X_(i) / X_(k))`` over the
  ``k`` largest order statistics. Assumes i.i.d. (or weakly dependent) data
  whose tail is regularly varying; biased when the Pareto regime starts far
  out in the tail (choose ``k`` small then). Used on column norms, whose tail
  index equals the injected α when the columns are α-stable vectors.
* :func:`mohammadi` — Mohammadi, Mohammadpour & Ogata (2015), the estimator
  used by Şimşekli et al. (2019) and this literature: split ``K = K1·K2``
  symmetric samples into ``K2`` blocks of ``K1``, sum each block into
  ``Y_i``; then ``1/α̂ = (mean log|Y| − mean log|X|) / log K1``. Assumes i.i.d.
  *symmetric* α-stable data (α ∈ (0, 2]); exact in expectation for SαS laws,
  and consistent for data in their domain of attraction. Used on raw weights.

Both run on numpy or JAX arrays and return a Python float.
"""

from __future__ import annotations

import math

import numpy as np


def _as_flat(x) -> np.ndarray:
  a = np.asarray(x, dtype=np.float64).ravel()
  a = a[np.isfinite(a)]
  if a.size < 4:
    raise ValueError(f"need at least 4 finite values to estimate a tail index; got {a.size}.")
  return a


def hill(x, k: int | None = None) -> float:
  """Hill's estimator of the tail index of positive data.

  Args:
    x: samples; absolute values are used.
    k: number of upper order statistics; default ``floor(sqrt(n))``.

  Returns:
    The estimate α̂ (larger means lighter tails).

  Example:
    >>> rng = np.random.default_rng(0)
    >>> round(hill(rng.pareto(1.5, 100000) + 1, k=2000), 1)
    1.5
  """
  a = np.sort(np.abs(_as_flat(x)))[::-1]
  k = int(math.sqrt(a.size)) if k is None else int(k)
  if not 1 <= k < a.size:
    raise ValueError(f"k must be in [1, {a.size - 1}]; got {k}.")
  top, threshold = a[:k], a[k]
  if threshold <= 0:
    raise ValueError("Hill's estimator needs the (k+1)-th largest |x| to be > 0; lower k.")
  return float(k / np.sum(np.log(top / threshold)))


def _largest_divisor_at_most(n: int, bound: int) -> int:
  for m in range(max(bound, 1), 0, -1):
    if n % m == 0:
      return m
  return 1


def mohammadi(x, block: int | None = None) -> float:
  """Tail index of symmetric α-stable data by block sums (Mohammadi et al. 2015).

  Args:
    x: samples, assumed i.i.d. SαS (e.g. the entries of a weight matrix).
    block: block size K1; default the largest divisor of the sample count
      that is <= sqrt(count), so no sample is dropped.

  Returns:
    α̂, clipped to (0, 2] (the range of stable laws).

  Example:
    >>> import jax
    >>> from htsgd_jax.stable import symmetric_stable
    >>> x = symmetric_stable(jax.random.key(0), (250000,), alpha=1.5)
    >>> round(mohammadi(x), 1)
    1.5

  References:
    Mohammadi, Mohammadpour & Ogata, "On estimating the tail index and the
    spectral measure of multivariate α-stable distributions", Metrika 78 (2015).
  """
  a = _as_flat(x)
  a = a[a != 0]
  n = a.size
  k1 = _largest_divisor_at_most(n, int(math.sqrt(n))) if block is None else int(block)
  if k1 < 2 or n // k1 < 2:
    raise ValueError(f"block size must be >= 2 with at least 2 blocks; got {k1} for {n} samples.")
  n = (n // k1) * k1
  sums = a[:n].reshape(-1, k1).sum(axis=1)
  inv_alpha = (np.mean(np.log(np.abs(sums))) - np.mean(np.log(np.abs(a[:n])))) / math.log(k1)
  return float(min(max(1.0 / inv_alpha, 1e-6), 2.0)) if inv_alpha > 0 else 2.0
