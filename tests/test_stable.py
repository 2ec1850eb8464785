"""Statistical checks of the α-stable samplers against scipy and closed forms.

Every test uses fixed seeds, so it is deterministic; thresholds are set where a
correct sampler passes with a wide margin and a sampler off by 10% in scale
fails (see test_ks_has_power).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from htsgd_jax import stable

ALPHAS = [0.5, 1.0, 1.5, 1.75, 1.9, 2.0]


def _scipy_sample(law, alpha, scale=1.0, size=5000, seed=0):
  return stats.levy_stable.rvs(
    **stable.scipy_levy_stable_params(law, alpha, scale), size=size, random_state=seed
  )


@pytest.mark.parametrize("alpha", ALPHAS)
def test_symmetric_matches_scipy_ks(alpha):
  ours = np.asarray(stable.symmetric_stable(jax.random.key(1), (20000,), alpha, scale=1.3))
  ref = _scipy_sample("symmetric", alpha, scale=1.3)
  assert stats.ks_2samp(ours, ref).pvalue > 0.01


def test_ks_has_power():
  # The same comparison rejects a sampler whose scale is 10% off.
  ours = np.asarray(stable.symmetric_stable(jax.random.key(1), (20000,), 1.75))
  ref = _scipy_sample("symmetric", 1.75)
  assert stats.ks_2samp(1.1 * ours, ref).pvalue < 0.01


def test_alpha_two_is_normal_with_variance_two():
  x = np.asarray(stable.symmetric_stable(jax.random.key(2), (200000,), 2.0))
  assert abs(x.var() - 2.0) < 0.03
  assert stats.kstest(x, stats.norm(scale=np.sqrt(2)).cdf).pvalue > 0.01


@pytest.mark.parametrize("alpha", [0.5, 1.0, 1.5, 1.9, 2.0])
@pytest.mark.parametrize("t", [0.3, 1.0, 2.5])
def test_characteristic_function(alpha, t):
  scale, n = 0.7, 400000
  x = stable.symmetric_stable(jax.random.key(3), (n,), alpha, scale=scale)
  empirical = float(jnp.mean(jnp.cos(t * x)))
  # |cos| <= 1, so 5 standard errors are at most 5 / sqrt(n) < 0.008.
  assert abs(empirical - np.exp(-(abs(scale * t) ** alpha))) < 5 / np.sqrt(n)


@pytest.mark.parametrize("alpha", [0.7, 1.0, 1.6])
def test_stability_property(alpha):
  # X1 + X2 has the law of 2**(1/alpha) X for i.i.d. SαS X1, X2, X.
  k1, k2, k3 = jax.random.split(jax.random.key(4), 3)
  total = stable.symmetric_stable(k1, (20000,), alpha) + stable.symmetric_stable(
    k2, (20000,), alpha
  )
  single = 2 ** (1 / alpha) * stable.symmetric_stable(k3, (20000,), alpha)
  assert stats.ks_2samp(np.asarray(total), np.asarray(single)).pvalue > 0.01


@pytest.mark.parametrize("alpha", [0.3, 0.5, 0.875, 0.99, 1.0])
@pytest.mark.parametrize("s", [0.5, 2.0])
def test_positive_laplace_transform(alpha, s):
  scale, n = 1.5, 400000
  a = stable.positive_stable(jax.random.key(5), (n,), alpha, scale=scale)
  assert bool((a > 0).all())
  empirical = float(jnp.mean(jnp.exp(-s * a)))
  assert abs(empirical - np.exp(-((scale * s) ** alpha))) < 5 / np.sqrt(n)


@pytest.mark.parametrize("alpha", [0.4, 0.75])
def test_positive_matches_scipy_ks(alpha):
  ours = np.asarray(stable.positive_stable(jax.random.key(6), (20000,), alpha))
  assert stats.ks_2samp(ours, _scipy_sample("positive", alpha)).pvalue > 0.01


@pytest.mark.parametrize("alpha", [1.2, 1.75, 2.0])
def test_sub_gaussian_marginals_are_sas(alpha):
  x = np.asarray(
    stable.sub_gaussian_stable(jax.random.key(7), (3, 20000), alpha, scale=0.8, axis=0)
  )
  ref = _scipy_sample("symmetric", alpha, scale=0.8)
  for row in x:
    assert stats.ks_2samp(row, ref).pvalue > 0.01


def test_sub_gaussian_vectors_share_their_mixing():
  # The ratio of two coordinates of one vector cancels sqrt(A): it is a ratio
  # of independent standard normals, i.e. standard Cauchy, whatever alpha.
  x = np.asarray(stable.sub_gaussian_stable(jax.random.key(8), (20000, 2), 1.3, axis=1))
  assert stats.kstest(x[:, 0] / x[:, 1], stats.cauchy.cdf).pvalue > 0.01
  # Whereas i.i.d. SαS coordinates do not give a Cauchy ratio.
  y = np.asarray(stable.symmetric_stable(jax.random.key(8), (20000, 2), 1.3))
  assert stats.kstest(y[:, 0] / y[:, 1], stats.cauchy.cdf).pvalue < 1e-6


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize("alpha", [0.999, 1.0, 1.001, 1.5, 1.999, 2.0])
def test_no_nan_and_dtype(dtype, alpha):
  x = stable.symmetric_stable(jax.random.key(9), (100000,), alpha, dtype=dtype)
  assert x.dtype == dtype
  assert not bool(jnp.isnan(x).any())
  if dtype != jnp.float16:  # float16 tops out at 65504: infs there are genuine
    assert bool(jnp.isfinite(x).all())


EDGE_WORDS = [0, 1, 2**31 - 1, 2**31, 2**31 + 1, 2**32 - 1]


def test_extreme_words_are_safe():
  # Every pairing of extreme angle and exponential words (angle at ±pi/2 and at
  # 0, exponential at its smallest and largest) gives no NaN, and a finite draw
  # where the law's extremes fit in float32 (at alpha = 0.5 the most extreme
  # pairing is ~1e40: a genuine inf).
  angle, exp_words = (
    jnp.asarray(w, jnp.uint32).ravel() for w in np.meshgrid(EDGE_WORDS, EDGE_WORDS)
  )
  assert not bool(jnp.isnan(stable.symmetric_stable_from_words(angle, exp_words, 0.5)).any())
  for alpha in [0.7, 1.0, 1.5, 1.999, 2.0]:
    x = stable.symmetric_stable_from_words(angle, exp_words, alpha)
    assert bool(jnp.isfinite(x).all()), alpha
  assert not bool(jnp.isnan(stable.positive_stable_from_words(angle, exp_words, 0.3)).any())
  for a in [0.6, 0.99]:
    x = stable.positive_stable_from_words(angle, exp_words, a)
    assert bool(jnp.isfinite(x).all() & (x > 0).all()), a


def test_traced_alpha_under_vmap_and_jit():
  draw = jax.jit(jax.vmap(lambda a: stable.symmetric_stable(jax.random.key(0), (20000,), a)))
  x = np.asarray(draw(jnp.array([1.2, 2.0])))
  assert stats.ks_2samp(x[0], _scipy_sample("symmetric", 1.2)).pvalue > 0.01
  assert stats.ks_2samp(x[1], _scipy_sample("symmetric", 2.0)).pvalue > 0.01


def test_raw_uint32_keys_work():
  x = stable.symmetric_stable(jax.random.PRNGKey(0), (3,), 1.5)
  assert x.shape == (3,)


@pytest.mark.parametrize("alpha", [0.0, -1.0, 2.01, float("nan")])
def test_bad_alpha_raises(alpha):
  with pytest.raises(ValueError, match="alpha must lie in"):
    stable.symmetric_stable(jax.random.key(0), (2,), alpha)


def test_bad_scale_and_positive_alpha_raise():
  with pytest.raises(ValueError, match="scale must be finite"):
    stable.symmetric_stable(jax.random.key(0), (2,), 1.5, scale=-1.0)
  with pytest.raises(ValueError, match=r"alpha must lie in \(0.0, 1.0\]"):
    stable.positive_stable(jax.random.key(0), (2,), 1.5)
