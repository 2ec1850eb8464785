"""The heavy-tailed noise transform: structure, scale, masks, keys, composition."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

import htsgd_jax


def _params():
  return {
    "hidden_0": {"kernel": jnp.ones((30, 400)), "bias": jnp.ones((400,))},
    "hidden_1": {"kernel": jnp.ones((400, 300))},
    "classifier": {"kernel": jnp.ones((300, 10))},
  }


def _noise_only(params, noise_type, alpha=1.5, sigma=1.0, lr=1.0, key=0, **kw):
  tx = htsgd_jax.heavy_tailed_noise(alpha, sigma, lr, noise_type, key=key, **kw)
  zeros = jax.tree.map(jnp.zeros_like, params)
  updates, _ = jax.jit(tx.update)(zeros, tx.init(params), params)
  return updates


def test_readme_example_runs_under_jit():
  lr, key = 0.01, jax.random.key(0)
  tx = optax.chain(
    optax.sgd(lr),
    htsgd_jax.heavy_tailed_noise(alpha=1.75, sigma=0.003, learning_rate=lr, noise_type=1, key=key),
  )
  params = _params()
  state = tx.init(params)
  grads = jax.tree.map(jnp.ones_like, params)
  updates, state = jax.jit(tx.update)(grads, state, params)
  assert jnp.allclose(updates["classifier"]["kernel"], -lr)
  assert not jnp.allclose(updates["hidden_0"]["kernel"], -lr)


def test_type1_is_one_scalar_per_column():
  n = np.asarray(_noise_only(_params(), 1)["hidden_1"]["kernel"])
  assert np.all(n == n[:1])  # constant down each column
  assert len(np.unique(n[0])) == n.shape[1]  # distinct across columns


def test_type2_is_iid_entries():
  n = np.asarray(_noise_only(_params(), 2, alpha=1.5)["hidden_1"]["kernel"])
  # Float32 draws from 2**23 grid points collide now and then; no structure does.
  assert len(np.unique(n)) > 0.99 * n.size
  ref = stats.levy_stable.rvs(1.5, 0, size=5000, random_state=0)
  assert stats.ks_2samp(n.ravel(), ref).pvalue > 0.01


def test_type3_columns_are_scaled_gaussians():
  # Divide each column by its own RMS: type 3 leaves Gaussian entries
  # (kurtosis ~ 3), type 2's i.i.d. stable entries stay heavy-tailed.
  def pooled_kurtosis(n):
    z = n / np.sqrt((n**2).mean(axis=0, keepdims=True))
    return stats.kurtosis(z.ravel(), fisher=False)

  params = _params()
  k3 = pooled_kurtosis(np.asarray(_noise_only(params, 3)["hidden_1"]["kernel"]))
  k2 = pooled_kurtosis(np.asarray(_noise_only(params, 2)["hidden_1"]["kernel"]))
  assert abs(k3 - 3.0) < 0.2
  assert k2 > 10.0


@pytest.mark.parametrize("noise_type", [1, 2, 3])
def test_scale_is_sigma_lr_pow_inverse_alpha(noise_type):
  alpha, sigma, lr = 1.5, 0.3, 0.01
  n = _noise_only(_params(), noise_type, alpha, sigma, lr)["hidden_1"]["kernel"]
  n = np.asarray(n) / (sigma * lr ** (1 / alpha))
  sample = n[0] if noise_type == 1 else n.ravel()  # type 1: one draw per column
  ref = stats.levy_stable.rvs(alpha, 0, size=5000, random_state=1)
  assert stats.ks_2samp(sample, ref).pvalue > 0.01


def test_schedule_uses_the_current_learning_rate():
  def schedule(count):
    return jnp.where(count == 0, 1.0, 1e-6)

  tx = htsgd_jax.heavy_tailed_noise(1.5, 1.0, schedule, noise_type=2, key=0)
  params = _params()
  zeros = jax.tree.map(jnp.zeros_like, params)
  state = tx.init(params)
  first, state = tx.update(zeros, state)
  second, state = tx.update(zeros, state)
  big = np.median(np.abs(first["hidden_1"]["kernel"]))
  small = np.median(np.abs(second["hidden_1"]["kernel"]))
  assert small / big == pytest.approx(1e-6 ** (1 / 1.5), rel=0.1)
  assert int(state.count) == 2


def test_default_mask_spares_classifier_biases_and_first_conv():
  params = {
    "conv_0": {"kernel": jnp.ones((3, 3, 3, 8))},
    "conv_1": {"kernel": jnp.ones((3, 3, 8, 8))},
    "hidden_0": {"kernel": jnp.ones((8, 16)), "bias": jnp.ones((16,))},
    "norm": {"scale": jnp.ones((16,))},
    "classifier": {"kernel": jnp.ones((16, 10))},
  }
  updates = _noise_only(params, 2)
  touched = jax.tree.map(lambda u: bool((u != 0).any()), updates)
  assert touched == {
    "conv_0": {"kernel": False},
    "conv_1": {"kernel": True},
    "hidden_0": {"kernel": True, "bias": False},
    "norm": {"scale": False},
    "classifier": {"kernel": False},
  }


def test_conv_filter_and_kernel_columns():
  params = {
    "conv_0": {"kernel": jnp.ones((3, 3, 1, 2))},
    "conv_1": {"kernel": jnp.ones((3, 3, 4, 5))},
    "classifier": {"kernel": jnp.ones((5, 2))},
  }
  per_filter = np.asarray(_noise_only(params, 1, conv_column="filter")["conv_1"]["kernel"])
  assert np.all(per_filter == per_filter[:1, :1, :1, :])  # one value per filter
  per_kernel = np.asarray(_noise_only(params, 1, conv_column="kernel")["conv_1"]["kernel"])
  assert np.all(per_kernel == per_kernel[:1, :1, :, :])  # one per (c_in, c_out)
  assert len(np.unique(per_kernel)) == 4 * 5


def test_explicit_mask_pytree_and_callable():
  params = _params()
  only_classifier = jax.tree.map(lambda _: False, params)
  only_classifier["classifier"]["kernel"] = True
  for mask in (only_classifier, lambda p: only_classifier):
    updates = _noise_only(params, 2, mask=mask)
    assert bool((updates["classifier"]["kernel"] != 0).all())
    assert not bool((updates["hidden_0"]["kernel"] != 0).any())


def test_same_key_same_noise_and_the_key_advances():
  params = _params()
  a = _noise_only(params, 2, key=7)["hidden_0"]["kernel"]
  b = _noise_only(params, 2, key=jax.random.key(7))["hidden_0"]["kernel"]
  np.testing.assert_array_equal(a, b)
  tx = htsgd_jax.heavy_tailed_noise(1.5, 1.0, 1.0, 2, key=7)
  zeros = jax.tree.map(jnp.zeros_like, params)
  state = tx.init(params)
  first, state = tx.update(zeros, state)
  second, _ = tx.update(zeros, state)
  assert not np.array_equal(first["hidden_0"]["kernel"], second["hidden_0"]["kernel"])


def test_raw_uint32_key_is_accepted():
  n = _noise_only(_params(), 1, key=jax.random.PRNGKey(3))
  assert bool(jnp.isfinite(n["hidden_0"]["kernel"]).all())


def test_vmap_over_seeds_and_alpha_gives_different_noise():
  params = _params()
  zeros = jax.tree.map(jnp.zeros_like, params)

  def one(key, alpha):
    tx = htsgd_jax.heavy_tailed_noise(alpha, 1.0, 1.0, 2, key=key)
    return tx.update(zeros, tx.init(params))[0]["hidden_0"]["kernel"]

  keys = jax.random.split(jax.random.key(0), 3)
  out = jax.jit(jax.vmap(one))(keys, jnp.array([1.5, 1.5, 2.0]))
  assert not np.array_equal(out[0], out[1])
  single = one(keys[1], 1.5)
  np.testing.assert_allclose(out[1], single, rtol=1e-5, atol=1e-6)
  assert abs(np.var(np.asarray(out[2])) - 2.0) < 0.1  # α = 2: N(0, 2)


def _mlp_loss(params, x, y):
  h = jax.nn.relu(x @ params["hidden_0"]["kernel"])
  logits = h @ params["classifier"]["kernel"]
  return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def test_sigma_zero_is_plain_sgd_bit_for_bit():
  key = jax.random.key(0)
  params = {
    "hidden_0": {"kernel": jax.random.normal(key, (8, 32))},
    "classifier": {"kernel": jax.random.normal(key, (32, 3))},
  }
  x = jax.random.normal(jax.random.key(1), (64, 8))
  y = jnp.arange(64) % 3

  def run(tx):
    @jax.jit
    def step(p, s):
      g = jax.grad(_mlp_loss)(p, x, y)
      u, s = tx.update(g, s, p)
      return optax.apply_updates(p, u), s

    p, s = params, tx.init(params)
    for _ in range(20):
      p, s = step(p, s)
    return p

  noisy = run(htsgd_jax.noisy_sgd(0.1, alpha=1.75, sigma=0.0, noise_type=3, key=5))
  plain = run(optax.sgd(0.1))
  jax.tree.map(np.testing.assert_array_equal, noisy, plain)


def test_noise_changes_training_but_stays_finite():
  tx = htsgd_jax.noisy_sgd(0.1, alpha=1.75, sigma=0.01, noise_type=1, key=5)
  params = {
    "hidden_0": {"kernel": jnp.zeros((8, 32))},
    "classifier": {"kernel": jnp.zeros((32, 3))},
  }
  updates, _ = jax.jit(tx.update)(params, tx.init(params), params)
  assert bool(jnp.isfinite(updates["hidden_0"]["kernel"]).all())
  assert bool((updates["hidden_0"]["kernel"] != 0).any())


@pytest.mark.parametrize(
  "kwargs, message",
  [
    (dict(alpha=2.5), "alpha must lie in"),
    (dict(alpha=0.0), "alpha must lie in"),
    (dict(sigma=-0.1), "sigma must be finite"),
    (dict(noise_type=4), "noise_type must be"),
    (dict(conv_column="row"), "conv_column must be"),
    (dict(learning_rate=-1.0), "learning_rate must be finite"),
    (dict(key="seed"), "key must be"),
  ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
  args = dict(alpha=1.5, sigma=0.1, learning_rate=0.1, noise_type=1, key=0) | kwargs
  with pytest.raises(ValueError, match=message):
    htsgd_jax.heavy_tailed_noise(**args)


# ----------------------------------------------------------------- tail_clip
def test_tail_clip_bounds_the_draws_and_leaves_the_body_alone():
  params = _params()
  exact = np.asarray(_noise_only(params, 2, alpha=1.2, key=5)["hidden_1"]["kernel"])
  clipped = np.asarray(
    _noise_only(params, 2, alpha=1.2, key=5, tail_clip=10.0)["hidden_1"]["kernel"]
  )
  assert np.abs(exact).max() > 100  # the exact law has far kicks here ...
  assert np.abs(clipped).max() == 10.0  # ... the clipped one stops at the bound
  inside = np.abs(exact) < 10
  assert inside.mean() > 0.9
  np.testing.assert_array_equal(clipped[inside], exact[inside])
  np.testing.assert_array_equal(clipped[~inside], 10.0 * np.sign(exact[~inside]))


def test_tail_clip_must_be_positive():
  with pytest.raises(ValueError, match="tail_clip must be None"):
    htsgd_jax.heavy_tailed_noise(1.5, 1.0, 1.0, tail_clip=0.0)


# ------------------------------------------------- traced values, optax wrappers
@pytest.mark.parametrize(
  "alpha,sigma",
  [
    (2.5, 1.0),
    (0.0, 1.0),
    (float("nan"), 1.0),
    (1.5, -1.0),
    (1.5, float("nan")),
    (1.5, float("inf")),
  ],
)
def test_out_of_range_traced_alpha_or_sigma_give_nan_not_inf_or_zero(alpha, sigma):
  params = _params()

  @jax.jit
  def noise_of(a, s):
    tx = htsgd_jax.heavy_tailed_noise(a, s, 1.0, 2, key=0)
    return tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)[0]

  out = noise_of(alpha, sigma)
  assert bool(jnp.isnan(out["hidden_1"]["kernel"]).all())
  assert bool((out["classifier"]["kernel"] == 0).all())  # untouched leaves stay exact
  good = noise_of(1.5, 0.0)  # a traced sigma of 0 is legitimate: exactly no noise
  assert bool((good["hidden_1"]["kernel"] == 0).all())


def test_inject_hyperparams_with_alpha_sigma_and_lr_injected():
  params = _params()
  grads = jax.tree.map(jnp.zeros_like, params)
  tx = optax.inject_hyperparams(htsgd_jax.noisy_sgd)(
    learning_rate=1.0, alpha=1.5, sigma=1.0, noise_type=2, key=7
  )
  state = tx.init(params)
  updates, state = jax.jit(tx.update)(grads, state, params)
  # The same draw as the plain transform with the same seed and settings (up to
  # float32 rounding: a traced alpha is not constant-folded).
  np.testing.assert_allclose(
    updates["hidden_1"]["kernel"],
    _noise_only(params, 2, alpha=1.5, key=7)["hidden_1"]["kernel"],
    rtol=1e-5,
    atol=1e-5,
  )
  # Changing an injected hyperparameter changes the next step, without rebuilding.
  state.hyperparams["sigma"] = jnp.asarray(0.0)
  updates, state = jax.jit(tx.update)(grads, state, params)
  assert bool((updates["hidden_1"]["kernel"] == 0).all())


def test_vmap_over_integer_seeds():
  params = {"hidden_0": {"kernel": jnp.zeros((5, 4))}, "classifier": {"kernel": jnp.zeros((4, 2))}}

  def noise_for(seed):
    tx = htsgd_jax.heavy_tailed_noise(1.5, 1.0, 1.0, 2, key=seed)
    return tx.update(params, tx.init(params), params)[0]["hidden_0"]["kernel"]

  batched = jax.vmap(noise_for)(jnp.arange(3))
  for seed in range(3):
    np.testing.assert_array_equal(batched[seed], noise_for(seed))


def test_noise_on_a_tree_without_hidden_layers_is_refused():
  from htsgd_jax import heavy_tailed_noise

  tx = heavy_tailed_noise(1.75, 0.1, 0.01, noise_type=1, key=0)
  with pytest.raises(ValueError, match="no hidden layer"):
    tx.init({"w": jnp.ones((3, 3))})
  with pytest.raises(ValueError, match="no hidden layer"):
    tx.init({"dense": {"kernel": jnp.ones((3, 3))}})  # a single kernel: the classifier
  with pytest.warns(UserWarning, match="selects no"):
    heavy_tailed_noise(1.75, 0.1, 0.01, key=0, mask=lambda p: {"w": False}).init({"w": jnp.ones(2)})
