"""The far tail of the samplers: counts above far thresholds against the exact asymptotics.

A sampler can pass KS tests in the body and still be wrong in the tail (the
first version drew the angle from a 2**-23 grid and had a ceiling at
|X| ~ 1e4 for alpha = 1.75). Here every check is a Poisson count of draws
above a threshold ``t`` against ``N P(|X| > t)``, with
``P(|X| > t) ~ C_alpha t**-alpha``, ``C_alpha = 2 Gamma(alpha) sin(pi alpha/2) / pi``
(and ``P(A > t) ~ t**-a / Gamma(1 - a)`` for the positive law). Every
threshold is far enough out that the asymptotic form is exact to well under
the Poisson noise.

Two kinds of checks:

* *Conditioned on the far tail* (default run): the samplers are functions of
  two random words per draw, so fixing the angle word's top bits to zero
  draws only from the event ``{angle within 2**-j of its singular end}``,
  whose probability ``2**-j`` is known. Counts above thresholds reached only
  inside that event then stand for ``2**j`` times as many unconditioned
  draws: 1e6 draws test the tail as 1e12 draws would, far beyond where the
  old grid sampler stopped.
* *Unconditioned*, through the public samplers and the optax transform:
  1e7 draws in the default run, 1e9 under ``-m slow`` (the counts that
  exposed the old ceiling).

Thresholds: a count passes when its two-sided Poisson p-value exceeds 1e-3.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

import htsgd_jax
from htsgd_jax import stable

P_MIN = 1e-3


def tail_constant(alpha):
  return 2 * special.gamma(alpha) * math.sin(math.pi * alpha / 2) / math.pi


def tail_probability(alpha, t, terms=4):
  """P(|X| > t) for SαS(alpha, 1): the asymptotic series, whose first term is C_alpha t**-alpha.

  From the density's series (Samorodnitsky & Taqqu 1994, or Zolotarev 1986):
  sum over k of (2/pi) (-1)**(k+1) Gamma(alpha k) / k! sin(k pi alpha / 2) t**(-alpha k).
  The corrections matter only at moderate t (6% at t = 10 for alpha = 1.75).
  """
  return sum(
    2
    / math.pi
    * (-1) ** (k + 1)
    * special.gamma(alpha * k)
    / math.factorial(k)
    * math.sin(k * math.pi * alpha / 2)
    * t ** (-alpha * k)
    for k in range(1, terms + 1)
  )


def poisson_p(count, expected):
  """Two-sided p-value of a Poisson count."""
  return min(
    1.0, 2 * min(stats.poisson.cdf(count, expected), stats.poisson.sf(count - 1, expected))
  )


def assert_counts(counts, expected):
  for t, (k, lam) in enumerate(zip(counts, expected)):
    assert poisson_p(k, lam) > P_MIN, f"threshold #{t}: {k} draws above it, {lam:.1f} expected"


def conditioned_words(key, n, j, top):
  """(angle, exponential) words with the angle's fraction below 2**-j; top bit given or random."""
  k_a, k_s, k_w = jax.random.split(key, 3)
  magnitude = jax.random.bits(k_a, (n,), jnp.uint32) >> (1 + j)
  sign = (jax.random.bits(k_s, (n,), jnp.uint32) >> 31) if top is None else jnp.uint32(top)
  return (sign << 31) | magnitude, jax.random.bits(k_w, (n,), jnp.uint32)


# alpha, thresholds: the lowest is ~5x the largest |X| outside the conditioning event.
# With j = 20, 1e6 conditioned draws stand for 1e12: thresholds from ~10x the
# largest |X| outside the event out to ~10 expected draws.
FAR = [
  (1.2, [1e6, 1e7, 1e8, 1e9]),
  (1.5, [5e4, 1e5, 1e6, 1e7]),
  (1.75, [1e4, 1e5, 1e6]),
  (0.8, [1e9, 1e10, 1e11, 1e12, 1e13]),
]


@pytest.mark.parametrize("alpha,thresholds", FAR)
def test_symmetric_far_tail_conditioned(alpha, thresholds):
  n, j = 1_000_000, 20
  angle, exp_words = conditioned_words(jax.random.key(11), n, j, top=None)
  x = np.abs(np.asarray(stable.symmetric_stable_from_words(angle, exp_words, alpha)))
  # The event has probability 2**-j, so each draw stands for 2**j unconditioned ones.
  counts = [(x > t).sum() for t in thresholds]
  expected = [n * 2**j * tail_constant(alpha) * t**-alpha for t in thresholds]
  assert min(expected) > 5
  assert_counts(counts, expected)


@pytest.mark.parametrize(
  "a,thresholds",
  [
    (0.6, [1e12, 1e14, 1e16, 1e18]),
    (0.75, [1e10, 1e11, 1e12, 1e13, 1e14]),
    (0.875, [1e9, 1e10, 1e11, 1e12]),
  ],
)
def test_positive_far_tail_conditioned(a, thresholds):
  # The positive law behind type 3 (a = alpha / 2); its tail is U -> pi (top bit set).
  n, j = 1_000_000, 20
  angle, exp_words = conditioned_words(jax.random.key(12), n, j, top=1)
  x = np.asarray(stable.positive_stable_from_words(angle, exp_words, a))
  counts = [(x > t).sum() for t in thresholds]
  expected = [n * 2 ** (j + 1) * t**-a / special.gamma(1 - a) for t in thresholds]
  assert min(expected) > 5
  assert_counts(counts, expected)


def test_the_tail_words_reach_beyond_any_grid_ceiling():
  # The smallest angle, 2**-44 of its range, gives ~(2**-44)**(-1/alpha):
  # 1e7 at alpha = 1.75, where the old 2**-23 grid stopped near 1e4.
  words = jnp.zeros((1,), jnp.uint32)
  x = float(stable.symmetric_stable_from_words(words, words + jnp.uint32(2**31), 1.75)[0])
  assert x > 1e7


@pytest.mark.parametrize(
  "alpha,thresholds",
  [(1.2, [30, 100, 300, 1000]), (1.5, [30, 100, 300, 1000]), (1.75, [10, 30, 100, 300])],
)
def test_symmetric_tail_counts(alpha, thresholds):
  n = 10_000_000
  x = np.abs(np.asarray(stable.symmetric_stable(jax.random.key(13), (n,), alpha)))
  assert_counts(
    [(x > t).sum() for t in thresholds], [n * tail_probability(alpha, t) for t in thresholds]
  )


def test_float64_words_reach_further():
  # With x64, words are 64 bits wide and the angle reaches 2**-76 of its range.
  with jax.enable_x64(True):
    words = jnp.zeros((1,), jnp.uint64)
    x = float(
      stable.symmetric_stable_from_words(words, words + jnp.uint64(2**63), 1.75, jnp.float64)[0]
    )
  assert x > 1e13  # (2**-76 * pi/2)**(-1/1.75)


def _exceedances(draw, thresholds, n_calls):
  """Counts of |draw(key)| above each threshold, summed over n_calls keys, in one program."""
  thresholds = jnp.asarray(thresholds, jnp.float32)

  def body(counts, key):
    x = jnp.abs(draw(key)).ravel()
    return counts + jnp.sum(x[:, None] > thresholds, axis=0, dtype=jnp.int32), None

  counts, _ = jax.jit(lambda keys: jax.lax.scan(body, jnp.zeros(len(thresholds), jnp.int32), keys))(
    jax.random.split(jax.random.key(14), n_calls)
  )
  return np.asarray(counts)


SLOW = [(1.2, [1e4, 1e5, 1e6]), (1.5, [1e3, 1e4, 5e4]), (1.75, [1e3, 3e3, 1e4])]


@pytest.mark.slow
@pytest.mark.parametrize("alpha,thresholds", SLOW)
def test_type2_noise_tail_counts_1e9_draws(alpha, thresholds):
  # The counts that exposed the old ceiling: 0 above 1e4 at alpha = 1.75 where 22 are due.
  rows, cols, calls = 1000, 10_000, 100
  params = {"w": jnp.zeros((rows, cols))}
  tx = htsgd_jax.heavy_tailed_noise(
    alpha, sigma=1.0, learning_rate=1.0, noise_type=2, mask={"w": True}
  )

  def draw(key):
    return tx.update(params, htsgd_jax.HeavyTailedNoiseState(jnp.zeros([], jnp.int32), key))[0]["w"]

  n = rows * cols * calls
  assert_counts(
    _exceedances(draw, thresholds, calls), [n * tail_probability(alpha, t) for t in thresholds]
  )


@pytest.mark.slow
@pytest.mark.parametrize("alpha,thresholds", SLOW)
def test_type3_marginal_tail_counts(alpha, thresholds):
  # Each marginal of the sub-Gaussian vectors is SαS(alpha, 1): same tail.
  rows, cols, calls = 4, 2_500_000, 100
  n = rows * cols * calls
  counts = _exceedances(
    lambda k: stable.sub_gaussian_stable(k, (rows, cols), alpha, axis=0), thresholds, calls
  )
  assert_counts(counts, [n * tail_probability(alpha, t) for t in thresholds])
