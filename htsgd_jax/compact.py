"""A pruned network made physically smaller: the same function, fewer units, less cost.

:func:`compact_dense` removes the pruned units of a dense stack (an FCN),
:func:`compact_conv` the pruned filters of a VGG-style convolution stack;
:func:`dense_cost` and :func:`conv_cost` count what is left (parameters, FLOPs
per example). Pruning itself, which zeroes the units, is :mod:`htsgd_jax.pruning`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from htsgd_jax import columns as columns_lib


class CompactNetwork(NamedTuple):
  """A pruned dense network made physically smaller (see :func:`compact_dense`).

  Attributes:
    params: the smaller parameters, same layer names and layout.
    widths: units kept in each hidden layer.
  """

  params: dict
  widths: dict[str, int]


def _dense_layer_names(params) -> list[str]:
  hidden = sorted(
    (k for k in params if k != columns_lib.CLASSIFIER_NAME),
    key=lambda name: columns_lib.natural_key([name]),
  )
  if columns_lib.CLASSIFIER_NAME not in params:
    raise ValueError(
      f"expected dense layers and a '{columns_lib.CLASSIFIER_NAME}' layer; got {sorted(params)}."
    )
  names = [*hidden, columns_lib.CLASSIFIER_NAME]
  fan_in = None
  for name in names:
    layer = params[name]
    kernel = layer.get("kernel") if isinstance(layer, dict) else None
    if kernel is None or np.ndim(kernel) != 2:
      shape = None if kernel is None else tuple(np.shape(kernel))
      raise ValueError(
        f"{name} is not a dense layer (its kernel is {shape}): compact_dense shrinks dense"
        " stacks of 2-D kernels (fan_in, units); compact_conv shrinks a VGG11Wide stack."
      )
    if fan_in is not None and np.shape(kernel)[0] != fan_in:
      raise ValueError(
        f"{name}'s kernel has shape {tuple(np.shape(kernel))}, but the layer before it has"
        f" {fan_in} units: the layers ({', '.join(names)}) do not form one dense stack."
      )
    fan_in = np.shape(kernel)[1]
  return names


def compact_dense(params, activation=jax.nn.relu) -> CompactNetwork:
  """Removes the pruned units of a dense network: a smaller network, the same function.

  For dense layers ``hidden_0 … hidden_k`` and ``classifier`` (the layout of
  :class:`htsgd_jax.models.FCN`, and of NNX or Linen MLPs named the same), every
  hidden unit whose incoming column is all zeros (pruned by :func:`htsgd_jax.prune`)
  goes, with its outgoing row in the next layer. Such a unit outputs the
  constant ``activation(bias)`` (0 without a bias), which is folded into the
  next layer's bias, so the smaller network computes what the masked one does.

  Args:
    params: pruned parameters (nested dict; kernels ``(fan_in, units)``).
    activation: the hidden layers' activation.

  Returns:
    A :class:`CompactNetwork`; run it with :func:`dense_apply`.

  Example:
    >>> p = {"hidden_0": {"kernel": jnp.array([[1.0, 0.0, 2.0]])},
    ...      "classifier": {"kernel": jnp.ones((3, 2))}}
    >>> small = compact_dense(p)
    >>> small.widths, small.params["classifier"]["kernel"].shape
    ({'hidden_0': 2}, (2, 2))
  """
  out, widths = {}, {}
  kept_before = constant_before = None
  for name in _dense_layer_names(params):
    kernel = np.asarray(params[name]["kernel"])
    bias = params[name].get("bias")
    bias = None if bias is None else np.asarray(bias)
    if kept_before is not None:
      shift = constant_before[~kept_before] @ kernel[~kept_before]
      kernel = kernel[kept_before]
      if np.any(shift != 0):
        bias = shift if bias is None else bias + shift
    if name != columns_lib.CLASSIFIER_NAME:
      kept_before = np.any(kernel != 0, axis=0)
      constant_before = (
        np.zeros(kernel.shape[1], kernel.dtype) if bias is None else np.asarray(activation(bias))
      )
      kernel = kernel[:, kept_before]
      bias = None if bias is None else bias[kept_before]
      widths[name] = int(kept_before.sum())
    out[name] = {"kernel": kernel} | ({} if bias is None else {"bias": bias})
  return CompactNetwork(out, widths)


def dense_apply(params, x, activation=jax.nn.relu) -> jax.Array:
  """Runs the dense stack of :func:`compact_dense` (inputs flattened, as in FCN).

  Example:
    >>> p = {"hidden_0": {"kernel": jnp.eye(2)}, "classifier": {"kernel": jnp.ones((2, 1))}}
    >>> dense_apply(p, jnp.array([[1.0, -1.0]])).tolist()
    [[1.0]]
  """
  x = jnp.reshape(x, (x.shape[0], -1))
  names = _dense_layer_names(params)
  for name in names:
    x = x @ params[name]["kernel"]
    if "bias" in params[name]:
      x = x + params[name]["bias"]
    if name != columns_lib.CLASSIFIER_NAME:
      x = activation(x)
  return x


def dense_cost(params) -> dict[str, int]:
  """Size and compute of a dense stack (as :func:`dense_apply` runs it), per example.

  ``parameters`` counts every kernel and bias entry; ``flops`` counts
  ``2 · fan_in · fan_out`` per layer (a multiply and an add per weight) plus
  one add per bias entry, for one input example.

  Example:
    >>> p = {"hidden_0": {"kernel": np.zeros((3, 2)), "bias": np.zeros(2)},
    ...      "classifier": {"kernel": np.zeros((2, 4))}}
    >>> dense_cost(p)
    {'parameters': 16, 'flops': 30}
  """
  parameters = flops = 0
  for name in _dense_layer_names(params):
    fan_in, fan_out = np.shape(params[name]["kernel"])
    biases = int(np.size(params[name]["bias"])) if "bias" in params[name] else 0
    parameters += fan_in * fan_out + biases
    flops += 2 * fan_in * fan_out + biases
  return dict(parameters=int(parameters), flops=int(flops))


def _conv_stack_names(params, channels) -> list[str]:
  """The conv layers of a ``VGG11Wide`` stack, checked against ``channels``."""
  widths = [int(c) for c in channels if c != "M"]
  names = [f"conv_{i}" for i in range(len(widths))]
  expected = [*names, columns_lib.CLASSIFIER_NAME]
  if sorted(params) != sorted(expected):
    raise ValueError(
      f"compact_conv shrinks a VGG11Wide stack ({', '.join(expected)} for these channels);"
      f" got layers {', '.join(sorted(params))}."
    )
  fan_in = None
  for name, width in zip([*names, columns_lib.CLASSIFIER_NAME], [*widths, None]):
    layer = params[name]
    if set(layer) != {"kernel"}:
      raise ValueError(
        f"{name} holds {sorted(layer)}: compact_conv shrinks bias-free stacks (a pruned"
        " filter's bias would leave a constant map that zero padding makes non-constant)."
      )
    shape = tuple(np.shape(layer["kernel"]))
    rank = 2 if width is None else 4
    if (
      len(shape) != rank
      or (width is not None and shape[-1] != width)
      or (fan_in is not None and shape[-2] != fan_in)
    ):
      raise ValueError(
        f"{name}'s kernel has shape {shape}, which does not follow the layer before it"
        f" ({fan_in} channels) and the channels {tuple(channels)}."
      )
    fan_in = shape[-1]
  return names


def compact_conv(params, channels) -> tuple[dict, tuple[int | str, ...]]:
  """Removes the pruned filters of a VGG-style CNN: a smaller network, the same function.

  For the bias-free stack of :class:`htsgd_jax.models.VGG11Wide` (3×3
  convolutions ``conv_0 …`` with ReLU and 2×2 max-pooling as ``channels``
  says, global average pooling, one ``classifier``), every filter that is all
  zeros (pruned by :func:`htsgd_jax.prune`) outputs a map of zeros, which ReLU, pooling
  and the next convolution's zero padding keep at zero. It goes, with its
  input channel in the next convolution, or its row in the classifier. The
  pooling layout stays. A layer whose filters are all pruned keeps one zero
  filter, as a Flax layer needs one.

  Args:
    params: pruned parameters of a ``VGG11Wide(channels=channels)``.
    channels: that network's layout (ints and ``"M"``).

  Returns:
    ``(params, channels)`` of the smaller network:
    ``VGG11Wide(num_classes, channels=channels).apply({"params": params}, x)``
    computes what the masked network computes.

  Example:
    >>> p = {"conv_0": {"kernel": jnp.ones((3, 3, 1, 2))},
    ...      "conv_1": {"kernel": jnp.ones((3, 3, 2, 3)).at[..., 1].set(0)},
    ...      "classifier": {"kernel": jnp.ones((3, 10))}}
    >>> small, layout = compact_conv(p, (2, "M", 3, "M"))
    >>> layout, small["classifier"]["kernel"].shape
    ((2, 'M', 2, 'M'), (2, 10))
  """
  names = _conv_stack_names(params, channels)
  out, widths = {}, []
  kept_before = None
  for name in [*names, columns_lib.CLASSIFIER_NAME]:
    kernel = np.asarray(params[name]["kernel"])
    if kept_before is not None:
      kernel = kernel[..., kept_before, :] if kernel.ndim == 4 else kernel[kept_before]
    if name != columns_lib.CLASSIFIER_NAME:
      kept_before = np.any(kernel != 0, axis=(0, 1, 2))
      if not kept_before.any():
        kept_before[0] = True  # an all-zero layer computes zeros with one zero filter too
      kernel = kernel[..., kept_before]
      widths.append(int(kept_before.sum()))
    out[name] = {"kernel": kernel}
  it = iter(widths)
  layout = tuple(c if c == "M" else next(it) for c in channels)
  return out, layout


def conv_layers(channels, input_shape) -> list[tuple[str, int, int, int, int]]:
  """Each convolution of a VGG layout: ``(name, h, w, c_in, c_out)``, at its input's size.

  ``input_shape = (h, w, c)`` is one example's; each 'M' halves ``h`` and ``w``.

  Example:
    >>> conv_layers((8, "M", 16), (4, 4, 1))
    [('conv_0', 4, 4, 1, 8), ('conv_1', 2, 2, 8, 16)]
  """
  h, w, c_in = input_shape
  layers = []
  for c in channels:
    if c == "M":
      h, w = h // 2, w // 2
      continue
    layers.append((f"conv_{len(layers)}", h, w, c_in, int(c)))
    c_in = int(c)
  return layers


def conv_cost(params, channels, input_shape) -> dict[str, int]:
  """Size and compute of a VGG stack (as :func:`compact_conv` returns it), per example.

  ``parameters`` counts every kernel entry; ``flops`` counts
  ``2 · h · w · kh · kw · c_in · c_out`` per convolution at its input's
  resolution ``h × w`` (:func:`conv_layers`) plus ``2 · c · classes`` for the
  classifier, for one ``input_shape = (h, w, c)`` example.

  Example:
    >>> p = {"conv_0": {"kernel": np.zeros((3, 3, 1, 2))},
    ...      "classifier": {"kernel": np.zeros((2, 10))}}
    >>> conv_cost(p, (2, "M"), (4, 4, 1))
    {'parameters': 38, 'flops': 616}
  """
  _conv_stack_names(params, channels)
  flops = sum(
    2 * h * w * int(np.prod(np.shape(params[name]["kernel"])))
    for name, h, w, _, _ in conv_layers(channels, input_shape)
  )
  flops += 2 * int(np.size(params[columns_lib.CLASSIFIER_NAME]["kernel"]))
  parameters = sum(int(np.size(leaf)) for leaf in jax.tree.leaves(params))
  return dict(parameters=parameters, flops=int(flops))
