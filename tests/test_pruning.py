"""Pruning rule, parameter accounting, and tail-index estimators."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from htsgd_jax import pruning, tail_index
from htsgd_jax.stable import symmetric_stable


def test_energy_rule_on_a_hand_built_matrix():
  # Column squared norms 50, 1, 4, 30, 15 (total 100). Ascending: 1, 4, 15, 30, 50;
  # cumulative fractions 0.01, 0.05, 0.20, ...: columns 1 and 2 go (5% <= 10%).
  w = jnp.zeros((2, 5)).at[0].set(jnp.sqrt(jnp.array([50.0, 1.0, 4.0, 30.0, 15.0])))
  params = {"hidden_0": {"kernel": w}, "classifier": {"kernel": jnp.ones((5, 3))}}
  pruned, layers = pruning.prune(params, 0.1)
  kept = np.asarray(jnp.linalg.norm(pruned["hidden_0"]["kernel"], axis=0) > 0)
  assert kept.tolist() == [True, False, False, True, True]
  assert int(layers["hidden_0/kernel"].n_pruned) == 2
  # With 20% the third smallest (cumulative exactly 0.20) goes too.
  _, layers = pruning.prune(params, 0.2)
  assert int(layers["hidden_0/kernel"].n_pruned) == 3
  np.testing.assert_array_equal(pruned["classifier"]["kernel"], params["classifier"]["kernel"])


def test_energy_rule_keeps_the_error_below_the_fraction():
  w = symmetric_stable(jax.random.key(0), (50, 400), 1.5)
  params = {"hidden_0": {"kernel": w}, "classifier": {"kernel": jnp.ones((400, 2))}}
  for f in (0.01, 0.1, 0.3):
    pruned, layers = pruning.prune(params, f)
    err2 = float(pruning.relative_error(params, pruned)) ** 2
    assert err2 <= f + 1e-6
    # ...and one more column would exceed it.
    n = int(layers["hidden_0/kernel"].n_pruned)
    sq = np.sort(np.asarray(jnp.sum(w**2, axis=0)))
    assert sq[: n + 1].sum() / sq.sum() > f


def test_count_rule_and_full_pruning():
  w = jnp.arange(1.0, 11.0)[None, :] * jnp.ones((3, 1))
  params = {"hidden_0": {"kernel": w}, "classifier": {"kernel": jnp.ones((10, 2))}}
  for f, expected in ((0.0, 0), (0.3, 3), (0.7, 7), (1.0, 10)):
    pruned, layers = pruning.prune(params, f, rule="count")
    assert int(layers["hidden_0/kernel"].n_pruned) == expected
    assert np.all(np.asarray(pruned["hidden_0"]["kernel"])[:, :expected] == 0)


def test_parameter_accounting_excludes_only_the_classifier():
  params = {
    "hidden_0": {"kernel": jnp.ones((4, 10))},
    "hidden_1": {"kernel": jnp.ones((10, 10))},
    "norm": {"scale": jnp.ones(10)},
    "classifier": {"kernel": jnp.ones((10, 3))},
  }
  _, layers = pruning.prune(params, 0.5, rule="count")
  # removed: 5 columns of 4 + 5 columns of 10 = 70, of 40 + 100 + 10 = 150.
  assert float(pruning.fraction_pruned(params, layers)) == pytest.approx(70 / 150)


def test_conv_filters_are_columns():
  k = jnp.ones((3, 3, 2, 4)) * jnp.array([1.0, 0.01, 2.0, 3.0])
  params = {
    "conv_0": {"kernel": jnp.ones((3, 3, 1, 2))},
    "conv_1": {"kernel": k},
    "classifier": {"kernel": jnp.ones((4, 2))},
  }
  # Filter squared norms ∝ 1, 1e-4, 4, 9: the two smallest hold 7% of the energy.
  pruned, layers = pruning.prune(params, 0.1)
  assert int(layers["conv_1/kernel"].n_pruned) == 2
  assert layers["conv_1/kernel"].weights_per_column == 18
  filter_norms = jnp.sqrt(jnp.sum(pruned["conv_1"]["kernel"] ** 2, axis=(0, 1, 2)))
  assert (np.asarray(filter_norms) > 0).tolist() == [False, False, True, True]
  assert "conv_0/kernel" not in layers  # the first conv is never pruned


def test_pruning_vmaps_over_seeds():
  ws = symmetric_stable(jax.random.key(1), (3, 20, 50), 1.2)
  params = {"hidden_0": {"kernel": ws}, "classifier": {"kernel": jnp.ones((3, 50, 2))}}
  batched = jax.vmap(lambda p: pruning.fraction_pruned(p, pruning.prune(p)[1]))(params)
  single = [
    float(pruning.fraction_pruned(p, pruning.prune(p)[1]))
    for p in ({"hidden_0": {"kernel": w}, "classifier": {"kernel": jnp.ones((50, 2))}} for w in ws)
  ]
  np.testing.assert_allclose(np.asarray(batched), single, rtol=1e-6)


def test_bad_pruning_arguments():
  with pytest.raises(ValueError, match="fraction must lie"):
    pruning.columns_to_prune(jnp.ones(3), 1.5)
  with pytest.raises(ValueError, match="rule must be"):
    pruning.columns_to_prune(jnp.ones(3), 0.1, rule="random")


@pytest.mark.parametrize("alpha", [0.8, 1.5, 3.0])
def test_hill_on_pareto(alpha):
  x = np.random.default_rng(0).pareto(alpha, 200000) + 1.0  # exact Pareto(alpha)
  assert tail_index.hill(x, k=5000) == pytest.approx(alpha, rel=0.05)


@pytest.mark.parametrize("alpha", [1.2, 1.5, 1.75])
def test_hill_on_stable_tails(alpha):
  # |SαS| has a Pareto tail of index α; Hill sees it with a small k.
  x = symmetric_stable(jax.random.key(2), (400000,), alpha)
  assert tail_index.hill(x, k=400) == pytest.approx(alpha, abs=0.2)


@pytest.mark.parametrize("alpha", [0.8, 1.2, 1.5, 1.75, 1.95])
def test_mohammadi_on_stable_samples(alpha):
  x = symmetric_stable(jax.random.key(3), (250000,), alpha)
  assert tail_index.mohammadi(x) == pytest.approx(alpha, abs=0.1)


def test_mohammadi_sees_gaussians_as_two():
  x = np.random.default_rng(1).normal(size=250000)
  assert tail_index.mohammadi(x) > 1.9


def test_estimators_reject_tiny_samples():
  with pytest.raises(ValueError, match="at least 4"):
    tail_index.hill([1.0, 2.0])
  with pytest.raises(ValueError, match="k must be"):
    tail_index.hill(np.arange(1.0, 11.0), k=10)


# ------------------------------------------------------- physically smaller
def test_compacted_fcn_equals_the_masked_one():
  from htsgd_jax import data, models
  from htsgd_jax.train import TrainConfig, train

  ds = data.load_dataset("digits")
  cfg = TrainConfig(
    dataset="digits",
    width=256,
    depth=3,
    lr=0.1,
    batch_size=100,
    max_steps=60,
    eval_every=30,
    noise_type=2,
    sigma=0.05,
    target_accuracy=None,
  )
  params = train(cfg, ds, progress=False).params
  pruned, layers = pruning.prune(params, 0.1)
  small = pruning.compact_dense(pruned)
  model = models.FCN(width=256, depth=3, num_classes=10)
  masked = model.apply({"params": pruned}, ds.x_test)
  # Float tolerance: sums reassociate, so errors scale with the logits' magnitude.
  scale = float(np.abs(masked).max())
  np.testing.assert_allclose(
    pruning.dense_apply(small.params, ds.x_test), masked, rtol=0, atol=1e-6 * scale
  )
  for name, kept in small.widths.items():
    assert kept == 256 - int(layers[f"{name}/kernel"].n_pruned)
    assert kept < 256
  # Each removed unit takes its incoming column and its outgoing row: the shapes
  # follow the kept widths, and more weights go than the paper's count (columns only).
  k0, k1 = small.widths["hidden_0"], small.widths["hidden_1"]
  shapes = {n: small.params[n]["kernel"].shape for n in small.params}
  assert shapes == {"hidden_0": (64, k0), "hidden_1": (k0, k1), "classifier": (k1, 10)}
  before = sum(np.asarray(params[n]["kernel"]).size for n in params)
  after = sum(small.params[n]["kernel"].size for n in small.params)
  assert (
    1 - after / before
    > float(pruning.fraction_pruned(params, layers)) * (64 * 256 + 256 * 256) / before
  )


def test_compaction_folds_the_biases_of_removed_units():
  rng = np.random.default_rng(0)
  params = {
    f"hidden_{i}": {
      "kernel": rng.normal(size=(8, 8)).astype(np.float32),
      "bias": rng.normal(size=8).astype(np.float32),
    }
    for i in range(2)
  }
  params["classifier"] = {"kernel": rng.normal(size=(8, 3)).astype(np.float32)}
  for name, dead in (("hidden_0", [1, 4]), ("hidden_1", [0, 7])):
    params[name]["kernel"][:, dead] = 0  # pruned columns; their biases stay
  small = pruning.compact_dense(params)
  assert small.widths == {"hidden_0": 6, "hidden_1": 6}
  x = rng.normal(size=(5, 8)).astype(np.float32)
  np.testing.assert_allclose(
    pruning.dense_apply(small.params, x), pruning.dense_apply(params, x), rtol=1e-5, atol=1e-5
  )
  assert "bias" in small.params["classifier"]  # the removed units' constant outputs


def _pruned_vgg(width=4, fraction=0.5):
  from htsgd_jax import models

  channels = models.vgg11_channels(width)
  model = models.VGG11Wide(num_classes=10, channels=channels)
  x = jax.random.normal(jax.random.key(0), (6, 32, 32, 1))
  params = model.init(jax.random.key(1), x[:1])["params"]
  # Positive first-layer maps keep every later layer's ReLUs partly open.
  params["conv_0"]["kernel"] = jnp.abs(params["conv_0"]["kernel"])
  pruned, layers = pruning.prune(params, fraction, rule="count")
  return model, channels, pruned, layers, x


def test_compact_conv_computes_the_masked_cnn_with_fewer_filters():
  model, channels, pruned, layers, x = _pruned_vgg()
  small, layout = pruning.compact_conv(pruned, channels)
  masked = model.apply({"params": pruned}, x)
  from htsgd_jax import models

  out = models.VGG11Wide(num_classes=10, channels=layout).apply({"params": small}, x)
  assert float(jnp.abs(masked).max()) > 0  # the check below is not of zeros
  np.testing.assert_allclose(out, masked, rtol=1e-5, atol=1e-5 * float(jnp.abs(masked).max()))
  # Every pruned filter left its layer, and its input channel left the next one.
  kept = [c for c in layout if c != "M"]
  full = [c for c in channels if c != "M"]
  for i, (n_kept, n_full) in enumerate(zip(kept, full)):
    pruned_here = int(layers[f"conv_{i}/kernel"].n_pruned) if i else 0  # conv_0 is never pruned
    assert n_kept == n_full - pruned_here
    assert small[f"conv_{i}"]["kernel"].shape[-1] == n_kept
    if i + 1 < len(kept):
      assert small[f"conv_{i + 1}"]["kernel"].shape[2] == n_kept
  assert small["classifier"]["kernel"].shape == (kept[-1], 10)
  assert sum(kept) < sum(full)


def test_compact_conv_keeps_one_zero_filter_of_an_all_pruned_layer():
  model, channels, pruned, _, x = _pruned_vgg(width=2, fraction=1.0)
  small, layout = pruning.compact_conv(pruned, channels)
  assert [c for c in layout if c != "M"] == [2, 1, 1, 1, 1, 1, 1, 1]
  from htsgd_jax import models

  out = models.VGG11Wide(num_classes=10, channels=layout).apply({"params": small}, x)
  np.testing.assert_array_equal(out, model.apply({"params": pruned}, x))


@pytest.mark.parametrize(
  "change, message",
  [
    (lambda p: p.pop("conv_7"), "compact_conv shrinks a VGG11Wide stack"),
    (lambda p: p["conv_3"].update(bias=jnp.zeros(16)), "conv_3 holds .*bias-free"),
    (lambda p: p.update(conv_2={"kernel": jnp.ones((3, 3, 5, 16))}), "conv_2's kernel has shape"),
  ],
)
def test_compact_conv_refuses_what_is_not_a_vgg_stack(change, message):
  _, channels, pruned, _, _ = _pruned_vgg()
  params = jax.tree.map(lambda a: a, pruned)
  change(params)
  with pytest.raises(ValueError, match=message):
    pruning.compact_conv(params, channels)
