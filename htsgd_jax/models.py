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
            **mixed_precision(self.dtype, conv=True),
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
  """Returns a model by name: ``"fcn"``, ``"mean_field"`` or ``"vgg11_wide"``.

  ``dtype`` is the compute dtype (:func:`mixed_precision`).

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
