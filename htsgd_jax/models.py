"""Flax networks of the paper, laid out so hidden-layer columns are found by name.

Every network names its output layer ``classifier`` and its hidden layers
``hidden_{i}`` (dense) or ``conv_{i}`` (convolutions), with weights in leaves
named ``kernel``: :func:`htsgd_jax.columns.hidden_layer_mask` then selects
exactly the hidden layers, for the noise and for pruning, without special cases.

Initialisation follows the authors' PyTorch code: dense layers use PyTorch's
default ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, VGG convolutions
``N(0, 2 / (k * k * c_out))``.

Mixed precision, the Flax way: every network takes ``dtype``, the *compute*
dtype of its matrix products and convolutions (``"float32"`` or
``"bfloat16"``). Parameters stay float32 (``param_dtype``), so gradients, the
optimiser, the SGD update and the α-stable noise never see bfloat16; products
take ``dtype`` inputs and accumulate and return float32
(``preferred_element_type``), so activations, logits, loss and softmax are
float32 too.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from htsgd_jax import columns
from htsgd_jax.config import COMPUTE_DTYPES, MODELS, check_compute_dtype  # noqa: F401 (public)

# PyTorch's nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
torch_linear_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")
# The authors' VGG conv init: N(0, sqrt(2 / (k * k * c_out))).
vgg_conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def mixed_precision(dtype, conv: bool = False) -> dict:
  """Keyword arguments that make a Flax ``Dense`` (``conv``: ``Conv``) compute in ``dtype``.

  Inputs and kernel are cast to ``dtype``; the product accumulates in, and
  returns, float32. Parameters stay float32. With float32 it is the plain layer.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> layer = nn.Dense(3, **mixed_precision("bfloat16"))
    >>> params = layer.init(jax.random.key(0), jnp.ones((1, 2)))
    >>> params["params"]["kernel"].dtype, layer.apply(params, jnp.ones((1, 2))).dtype
    (dtype('float32'), dtype('float32'))
  """
  if check_compute_dtype(dtype) == "float32":
    return {}
  if conv:
    product = dict(
      conv_general_dilated=functools.partial(
        jax.lax.conv_general_dilated, preferred_element_type=jnp.float32
      )
    )
  else:
    product = dict(
      dot_general=functools.partial(jax.lax.dot_general, preferred_element_type=jnp.float32)
    )
  return dict(dtype=jnp.dtype(dtype), param_dtype=jnp.float32, **product)


@jax.custom_vjp
def _product_with_transposed_input(x, x_t, kernel):
  return jax.lax.dot(x, kernel, preferred_element_type=jnp.float32)


def _product_fwd(x, x_t, kernel):
  return _product_with_transposed_input(x, x_t, kernel), (x_t, kernel)


def _product_bwd(residuals, g):
  x_t, kernel = residuals
  g = g.astype(kernel.dtype)
  # The weight gradient x^T.g as a plain (features, batch) x (batch, units) product: on
  # AMX CPUs a bfloat16 product runs about 3x faster with x^T laid out contiguously than
  # contracted over x's batch axis. The input cotangent is dead code when x is data.
  dx = jax.lax.dot_general(g, kernel, (((1,), (1,)), ((), ())), preferred_element_type=jnp.float32)
  dk = jax.lax.dot(x_t, g, preferred_element_type=jnp.float32)
  return dx.astype(x_t.dtype), None, dk.astype(kernel.dtype)


_product_with_transposed_input.defvjp(_product_fwd, _product_bwd)


def transposed_input_product(x_t: jax.Array):
  """A ``Dense`` ``dot_general`` whose weight gradient reads the inputs from ``x_t``.

  ``x_t`` is the layer's input batch transposed, ``(features, batch)``, laid
  out contiguously in the compute dtype. The forward product is the plain
  ``x @ kernel`` (float32 accumulation and output); the weight gradient is
  ``x_t @ g`` with the cotangent ``g`` rounded to the compute dtype, the
  same gradient within that dtype's rounding.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> x = jax.random.normal(jax.random.key(0), (6, 3))
    >>> layer = nn.Dense(2, use_bias=False, dot_general=transposed_input_product(x.T))
    >>> params = layer.init(jax.random.key(1), x)
    >>> g = jax.grad(lambda p: layer.apply(p, x).sum())(params)["params"]["kernel"]
    >>> bool(jnp.allclose(g, x.T @ jnp.ones((6, 2)), atol=1e-5))
    True
  """

  def dot_general(x, kernel, dimension_numbers, precision=None, preferred_element_type=None):
    del precision, preferred_element_type  # always float32 accumulation, as mixed_precision
    if dimension_numbers != (((x.ndim - 1,), (0,)), ((), ())) or x.ndim != 2:
      raise ValueError("transposed_input_product takes (batch, features) inputs of a Dense layer.")
    return _product_with_transposed_input(x, x_t.astype(x.dtype), kernel)

  return dot_general


_NHWC = jax.lax.ConvDimensionNumbers((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))


def _same_conv(x, kernel):
  return jax.lax.conv_general_dilated(
    x, kernel, (1, 1), "SAME", dimension_numbers=_NHWC, preferred_element_type=jnp.float32
  )


@jax.custom_vjp
def _conv_with_matmul_gradient(x, kernel):
  return _same_conv(x, kernel)


def _conv_fwd(x, kernel):
  return _same_conv(x, kernel), (x, kernel)


def _conv_bwd(residuals, g):
  x, kernel = residuals
  g = g.astype(kernel.dtype)
  kh, kw, c_in, c_out = kernel.shape
  h, w = x.shape[1:3]
  # Both gradients as forward-shaped operations: XLA:CPU runs the convolutions that
  # autodiff makes (dilated, contracted over the batch) 10-60x slower inside a loop.
  dx = _same_conv(g, jnp.flip(kernel, (0, 1)).swapaxes(2, 3))
  padded = jnp.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
  patches = jnp.concatenate(
    [padded[:, i : i + h, j : j + w, :] for i in range(kh) for j in range(kw)], axis=-1
  )
  dk = jax.lax.dot_general(
    patches.reshape(-1, kh * kw * c_in),
    g.reshape(-1, c_out),
    (((0,), (0,)), ((), ())),
    preferred_element_type=jnp.float32,
  )
  return dx.astype(x.dtype), dk.reshape(kernel.shape).astype(kernel.dtype)


_conv_with_matmul_gradient.defvjp(_conv_fwd, _conv_bwd)


def conv_with_matmul_gradient(
  lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None, **kwargs
):
  """A Flax ``Conv`` ``conv_general_dilated`` whose gradients run fast on CPUs.

  For stride-1 'SAME' convolutions of odd kernels in Flax's NHWC/HWIO layout
  (VGG's): the output is the plain convolution (float32 accumulation and
  output); the input gradient is the convolution with the flipped kernel,
  and the kernel gradient one matrix product of the input's patches (im2col)
  with the cotangent, rounded to the compute dtype. XLA:CPU runs autodiff's
  own gradient convolutions 10-60x slower inside a ``scan`` than outside it.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> conv = nn.Conv(4, (3, 3), use_bias=False, conv_general_dilated=conv_with_matmul_gradient)
    >>> x = jax.random.normal(jax.random.key(0), (2, 5, 5, 3))
    >>> p = conv.init(jax.random.key(1), x)
    >>> plain = nn.Conv(4, (3, 3), use_bias=False)
    >>> g1, g2 = (jax.grad(lambda p: (c.apply(p, x) ** 2).sum())(p) for c in (conv, plain))
    >>> bool(jnp.allclose(g1["params"]["kernel"], g2["params"]["kernel"], rtol=1e-5, atol=1e-4))
    True
  """
  del kwargs  # precision, preferred_element_type: always float32 accumulation
  kh, kw = rhs.shape[:2]
  same = padding == "SAME" or tuple(map(tuple, padding)) == ((kh // 2, kh // 2), (kw // 2, kw // 2))
  ones = (None, (1, 1))
  if not (
    tuple(window_strides) == (1, 1)
    and same
    and kh % 2
    and kw % 2
    and lhs_dilation in ones
    and rhs_dilation in ones
  ):
    raise ValueError(
      "conv_with_matmul_gradient takes stride-1 'SAME' 2-D convolutions of odd kernels;"
      f" got strides {window_strides}, padding {padding}, kernel {rhs.shape[:2]}."
    )
  return _conv_with_matmul_gradient(lhs, rhs)


class FCN(nn.Module):
  """The paper's bias-free ReLU fully connected network.

  Attributes:
    width: units per hidden layer (the paper's n).
    depth: number of hidden layers + 1, as in the reference code (``depth=2``
      is one hidden layer).
    num_classes: outputs.
    dtype: compute dtype of the products (see :func:`mixed_precision`).

  ``x_t``, if given, is the input batch flattened and transposed,
  ``(features, batch)``, contiguous: the first layer's weight gradient is
  then computed from it (:func:`transposed_input_product`), the fast layout
  of bfloat16 products on CPUs; the outputs are the same.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> model = FCN(width=16, depth=3, num_classes=10)
    >>> params = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"]
    >>> sorted(params), params["hidden_0"]["kernel"].shape
    (['classifier', 'hidden_0', 'hidden_1'], (784, 16))
  """

  width: int
  depth: int = 2
  num_classes: int = 10
  dtype: str = "float32"

  @nn.compact
  def __call__(self, x, x_t=None):
    if self.depth < 2:
      raise ValueError(f"depth counts hidden layers + 1 and must be >= 2; got {self.depth}.")
    x = x.reshape((x.shape[0], -1))
    precision = mixed_precision(self.dtype)
    for i in range(self.depth - 1):
      layer = precision
      if i == 0 and x_t is not None:
        layer = dict(precision, dot_general=transposed_input_product(x_t))
      x = nn.relu(
        nn.Dense(
          self.width,
          use_bias=False,
          kernel_init=torch_linear_init,
          name=f"hidden_{i}",
          **layer,
        )(x)
      )
    return nn.Dense(
      self.num_classes,
      use_bias=False,
      kernel_init=torch_linear_init,
      name="classifier",
      **precision,
    )(x)


def takes_transposed_input(model: nn.Module) -> bool:
  """Whether ``model`` computes in bfloat16 and takes its batch transposed (``x_t``).

  Such a model gets ``apply(params, x, x_t)`` in training, with ``x_t`` laid
  out by :func:`htsgd_jax.program.epoch_batches_t`; in float32 the plain
  layout is as fast.

  Example:
    >>> takes_transposed_input(FCN(8, dtype="bfloat16")), takes_transposed_input(FCN(8))
    (True, False)
  """
  return isinstance(model, FCN) and model.dtype != "float32"


def has_convolutions(model: nn.Module) -> bool:
  """Whether ``model`` is a convolutional network (:class:`VGG11Wide`).

  Example:
    >>> has_convolutions(VGG11Wide()), has_convolutions(FCN(8))
    (True, False)
  """
  return isinstance(model, VGG11Wide)


class MeanFieldNet(nn.Module):
  """The theory's one-hidden-layer network in the mean-field scaling.

  ``f(x) = (1/n) Σ_j a_j relu(<w_j, x>)``: column ``j`` of
  ``hidden_0/kernel`` is ``w_j``; ``classifier/kernel`` row ``j`` is ``a_j``.
  To freeze the second layer, train with :func:`frozen_classifier_mask`.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> model = MeanFieldNet(width=8, num_classes=2)
    >>> params = model.init(jax.random.key(0), jnp.zeros((1, 5)))["params"]
    >>> model.apply({"params": params}, jnp.ones((3, 5))).shape
    (3, 2)
  """

  width: int
  num_classes: int = 2
  classifier_init: nn.initializers.Initializer = nn.initializers.normal(1.0)
  dtype: str = "float32"

  @nn.compact
  def __call__(self, x):
    x = x.reshape((x.shape[0], -1))
    precision = mixed_precision(self.dtype)
    h = nn.relu(
      nn.Dense(
        self.width,
        use_bias=False,
        kernel_init=nn.initializers.normal(1.0 / jnp.sqrt(x.shape[-1])),
        name="hidden_0",
        **precision,
      )(x)
    )
    out = nn.Dense(
      self.num_classes,
      use_bias=False,
      kernel_init=self.classifier_init,
      name="classifier",
      **precision,
    )(h)
    return out / self.width


VGG11_WIDE_CHANNELS: Sequence[int | str] = (
  128,
  "M",
  256,
  "M",
  512,
  512,
  "M",
  1024,
  1024,
  "M",
  1024,
  1024,
  "M",
)


def vgg11_channels(width: int) -> tuple[int | str, ...]:
  """VGG-11's layout with ``width`` channels in its first convolution.

  The others scale with it as in VGG-11 (×1, ×2, ×4, ×4, ×8, ×8, ×8, ×8);
  ``vgg11_channels(128)`` is :data:`VGG11_WIDE_CHANNELS`, the authors'
  ``vgg11_wide``.

  Example:
    >>> vgg11_channels(8)
    (8, 'M', 16, 'M', 32, 32, 'M', 64, 64, 'M', 64, 64, 'M')
    >>> vgg11_channels(128) == tuple(VGG11_WIDE_CHANNELS)
    True
  """
  if int(width) < 1:
    raise ValueError(f"vgg11 needs at least one channel in its first convolution; got {width}.")
  return tuple(c if c == "M" else int(c) * int(width) // 128 for c in VGG11_WIDE_CHANNELS)


class VGG11Wide(nn.Module):
  """VGG-11 with doubled channels, bias-free, as ``vgg11_wide`` in the authors' code.

  Convolutions ``conv_0 … conv_7`` (3×3, 'SAME', ReLU) with 2×2 max-pooling,
  global average pooling, and one linear ``classifier``.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> model = VGG11Wide(num_classes=10, channels=(8, "M", 16, "M"))
    >>> params = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"]
    >>> params["conv_1"]["kernel"].shape
    (3, 3, 8, 16)
  """

  num_classes: int = 10
  channels: Sequence[int | str] = VGG11_WIDE_CHANNELS
  dtype: str = "float32"

  @nn.compact
  def __call__(self, x):
    i = 0
    for c in self.channels:
      if c == "M":
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
      else:
        x = nn.relu(
          nn.Conv(
            int(c),
            (3, 3),
            padding="SAME",
            use_bias=False,
            kernel_init=vgg_conv_init,
            name=f"conv_{i}",
            **{
              **mixed_precision(self.dtype, conv=True),
              "conv_general_dilated": conv_with_matmul_gradient,
            },
          )(x)
        )
        i += 1
    x = x.mean(axis=(1, 2))
    return nn.Dense(
      self.num_classes,
      use_bias=False,
      kernel_init=torch_linear_init,
      name="classifier",
      **mixed_precision(self.dtype),
    )(x)


def build_model(
  name: str, num_classes: int, width: int = 100, depth: int = 2, dtype: str = "float32"
) -> nn.Module:
  """Returns a model by name: ``"fcn"``, ``"mean_field"``, ``"vgg11_wide"`` or ``"vgg11"``.

  ``width`` is the hidden width of ``fcn`` and ``mean_field``, and the first
  convolution's channels of ``vgg11`` (:func:`vgg11_channels`); ``dtype`` is
  the compute dtype (:func:`mixed_precision`).

  Example:
    >>> build_model("fcn", num_classes=2, width=10)
    FCN(
        # attributes
        width = 10
        depth = 2
        num_classes = 2
        dtype = 'float32'
    )
  """
  if name == "fcn":
    return FCN(width=width, depth=depth, num_classes=num_classes, dtype=dtype)
  if name == "mean_field":
    return MeanFieldNet(width=width, num_classes=num_classes, dtype=dtype)
  if name == "vgg11_wide":
    return VGG11Wide(num_classes=num_classes, dtype=dtype)
  if name == "vgg11":
    return VGG11Wide(num_classes=num_classes, channels=vgg11_channels(width), dtype=dtype)
  raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}.")


def frozen_classifier_mask(params):
  """Bool pytree, True except under ``classifier``: pass to ``optax.masked`` to freeze it.

  Example:
    >>> frozen_classifier_mask({"hidden_0": {"kernel": 0}, "classifier": {"kernel": 0}})
    {'classifier': {'kernel': False}, 'hidden_0': {'kernel': True}}
  """
  return jax.tree_util.tree_map_with_path(
    lambda path, _: columns.CLASSIFIER_NAME not in columns.path_names(path), params
  )
