"""Pruned networks made physically smaller (htsgd_jax.compact): the masked network's function."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from htsgd_jax import compact, pruning


def test_compacted_fcn_equals_the_masked_one():
  from htsgd_jax import data, models
  from htsgd_jax.training import TrainConfig, train

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
  small = compact.compact_dense(pruned)
  model = models.FCN(width=256, depth=3, num_classes=10)
  masked = model.apply({"params": pruned}, ds.x_test)
  # Float tolerance: sums reassociate, so errors scale with the logits' magnitude.
  scale = float(np.abs(masked).max())
  np.testing.assert_allclose(
    compact.dense_apply(small.params, ds.x_test), masked, rtol=0, atol=1e-6 * scale
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
  small = compact.compact_dense(params)
  assert small.widths == {"hidden_0": 6, "hidden_1": 6}
  x = rng.normal(size=(5, 8)).astype(np.float32)
  np.testing.assert_allclose(
    compact.dense_apply(small.params, x), compact.dense_apply(params, x), rtol=1e-5, atol=1e-5
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
  small, layout = compact.compact_conv(pruned, channels)
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
  small, layout = compact.compact_conv(pruned, channels)
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
    compact.compact_conv(params, channels)


def test_compact_dense_refuses_what_it_cannot_shrink():
  from htsgd_jax import compact_dense

  conv = {"conv_0": {"kernel": np.ones((3, 3, 1, 4))}, "classifier": {"kernel": np.ones((4, 2))}}
  with pytest.raises(ValueError, match="dense"):
    compact_dense(conv)
  mismatched = {"hidden_0": {"kernel": np.ones((5, 4))}, "classifier": {"kernel": np.ones((3, 2))}}
  with pytest.raises(ValueError, match="shape"):
    compact_dense(mismatched)
