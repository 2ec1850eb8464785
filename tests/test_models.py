"""Shapes and parameter layouts of the paper's networks."""

import jax
import jax.numpy as jnp
import pytest

from htsgd_jax import columns, models


def _init(model, shape):
  return model.init(jax.random.key(0), jnp.zeros((2,) + shape))["params"]


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_fcn_layout_and_hidden_mask(depth):
  model = models.FCN(width=12, depth=depth, num_classes=5)
  params = _init(model, (28, 28, 1))
  assert set(params) == {f"hidden_{i}" for i in range(depth - 1)} | {"classifier"}
  assert params["hidden_0"]["kernel"].shape == (784, 12)
  assert params["classifier"]["kernel"].shape == (12, 5)
  assert all("bias" not in layer for layer in params.values())  # bias-free
  mask = columns.hidden_layer_mask(params)
  assert mask["classifier"]["kernel"] is False
  assert all(mask[f"hidden_{i}"]["kernel"] for i in range(depth - 1))
  assert model.apply({"params": params}, jnp.ones((3, 28, 28, 1))).shape == (3, 5)


def test_fcn_init_matches_pytorch_linear_default():
  params = _init(models.FCN(width=4000, depth=2, num_classes=2), (140,))
  w = params["hidden_0"]["kernel"]
  bound = 1 / jnp.sqrt(140.0)
  assert float(jnp.abs(w).max()) <= bound
  assert float(jnp.abs(w).max()) > 0.99 * bound


def test_mean_field_scaling_and_freeze_mask():
  model = models.MeanFieldNet(width=50, num_classes=2)
  params = _init(model, (7,))
  x = jax.random.normal(jax.random.key(1), (4, 7))
  h = jax.nn.relu(x @ params["hidden_0"]["kernel"])
  expected = h @ params["classifier"]["kernel"] / 50
  assert jnp.allclose(model.apply({"params": params}, x), expected, atol=1e-6)
  frozen = models.frozen_classifier_mask(params)
  assert frozen == {"hidden_0": {"kernel": True}, "classifier": {"kernel": False}}


def test_vgg11_wide_layout():
  model = models.VGG11Wide(num_classes=10)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))[
    "params"
  ]
  chans = [128, 256, 512, 512, 1024, 1024, 1024, 1024]
  assert [shapes[f"conv_{i}"]["kernel"].shape[-1] for i in range(8)] == chans
  assert shapes["conv_0"]["kernel"].shape == (3, 3, 3, 128)
  assert shapes["classifier"]["kernel"].shape == (1024, 10)
  mask = columns.hidden_layer_mask(shapes)
  assert mask["conv_0"]["kernel"] is False  # the first conv is skipped
  assert all(mask[f"conv_{i}"]["kernel"] for i in range(1, 8))
  assert mask["classifier"]["kernel"] is False


def test_unknown_model_and_bad_depth():
  with pytest.raises(ValueError, match="unknown model"):
    models.build_model("resnet", num_classes=10)
  with pytest.raises(ValueError, match="depth"):
    _init(models.FCN(width=4, depth=1), (3,))


def test_vgg11_scales_the_wide_layout_and_pools_mnist32_to_one_pixel():
  assert models.vgg11_channels(128) == tuple(models.VGG11_WIDE_CHANNELS)
  model = models.build_model("vgg11", num_classes=10, width=4)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 1))))
  chans = [shapes["params"][f"conv_{i}"]["kernel"].shape[-1] for i in range(8)]
  assert chans == [4, 8, 16, 16, 32, 32, 32, 32]
  with pytest.raises(ValueError, match="at least one channel"):
    models.vgg11_channels(0)


@pytest.mark.parametrize("dtype, rtol", [("float32", 1e-5), ("bfloat16", 2e-2)])
def test_conv_gradients_as_products_are_autodiffs(dtype, rtol):
  """The VGG convolutions' custom gradients equal autodiff's (bf16: within its rounding)."""
  x = jax.random.normal(jax.random.key(0), (4, 8, 8, 6))
  kernel = jax.random.normal(jax.random.key(1), (3, 3, 6, 5)) * 0.3
  target = jax.random.normal(jax.random.key(2), (4, 8, 8, 5))

  def loss(conv, x, kernel):
    return jnp.sum((conv(x.astype(dtype), kernel.astype(dtype)) - target) ** 2)

  def ours(x, k):
    return models.conv_with_matmul_gradient(x, k, (1, 1), "SAME")

  def autodiff(x, k):
    return jax.lax.conv_general_dilated(
      x,
      k,
      (1, 1),
      "SAME",
      dimension_numbers=("NHWC", "HWIO", "NHWC"),
      preferred_element_type=jnp.float32,
    )

  got = jax.grad(lambda x, k: loss(ours, x, k), argnums=(0, 1))(x, kernel)
  want = jax.grad(lambda x, k: loss(autodiff, x, k), argnums=(0, 1))(x, kernel)
  for g, w in zip(got, want):
    scale = float(jnp.abs(w).max())
    assert float(jnp.abs(g - w).max()) <= rtol * scale


def test_conv_with_matmul_gradient_refuses_other_convolutions():
  x, k = jnp.zeros((1, 8, 8, 2)), jnp.zeros((3, 3, 2, 4))
  with pytest.raises(ValueError, match="stride-1 'SAME'"):
    models.conv_with_matmul_gradient(x, k, (2, 2), "SAME")
  with pytest.raises(ValueError, match="stride-1 'SAME'"):
    models.conv_with_matmul_gradient(x, k, (1, 1), "VALID")
