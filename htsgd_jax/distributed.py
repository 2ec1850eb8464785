"""Devices and processes: the run mesh, and the collectives that every process calls together.

With runs sharded over several processes (``jax.distributed``) no process
holds them all: :func:`to_host` gathers, :func:`broadcast_json` and
:func:`broadcast_checkpoint` send process 0's data to the others, and
:func:`any_process` / :func:`broadcast_flag` make every process take the
same decision. With one process each is a plain host operation.
"""

from __future__ import annotations

import json

import jax
import numpy as np
from jax.experimental import multihost_utils

RUN_AXIS = "runs"


def run_mesh(devices=None) -> jax.sharding.Mesh:
  """A 1-D mesh over ``devices`` (default: all) whose axis holds the runs.

  ``Auto`` axis type: sharding propagates (GSPMD) from the inputs' run axis;
  ``jax.make_mesh``'s default (Explicit) would need every gather annotated.

  Example:
    >>> run_mesh().axis_names
    ('runs',)
  """
  devices = jax.devices() if devices is None else list(devices)
  return jax.make_mesh(
    (len(devices),), (RUN_AXIS,), devices=devices, axis_types=(jax.sharding.AxisType.Auto,)
  )


def to_host(tree):
  """Every leaf's whole value on this host, also for arrays spread over several processes.

  With runs sharded across processes (``jax.distributed``) no process holds
  them all: the gather is a collective, so every process must call this at
  the same point. PRNG keys travel as key data.

  Example:
    >>> import jax.numpy as jnp
    >>> to_host({"a": jnp.arange(3)})["a"].tolist()
    [0, 1, 2]
  """

  def one(x):
    if not isinstance(x, jax.Array) or x.is_fully_addressable:
      return jax.device_get(x)
    return through_key_data(lambda a: multihost_utils.process_allgather(a, tiled=True), x)

  return jax.tree.map(one, tree)


def through_key_data(fn, x):
  """``fn(x)``; a PRNG key array goes through ``fn`` as its key data and is wrapped again.

  Collectives and placement across processes take plain arrays only.
  """
  if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    return jax.random.wrap_key_data(fn(jax.random.key_data(x)), impl=str(jax.random.key_impl(x)))
  return fn(x)


def broadcast_flag(flag: bool) -> bool:
  """Process 0's ``flag``, on every process."""
  if jax.process_count() == 1:
    return bool(flag)
  return bool(multihost_utils.broadcast_one_to_all(np.int32(flag)))


def broadcast_json(obj):
  """Process 0's JSON-able ``obj``, on every process (the others pass anything).

  Example:
    >>> broadcast_json({"runs": [1, 2]})
    {'runs': [1, 2]}
  """
  if jax.process_count() == 1:
    return obj
  text = json.dumps(obj).encode() if jax.process_index() == 0 else b""
  size = int(multihost_utils.broadcast_one_to_all(np.int32(len(text))))
  buffer = np.zeros(size, np.uint8)
  if jax.process_index() == 0:
    buffer[:] = np.frombuffer(text, np.uint8)
  return json.loads(np.asarray(multihost_utils.broadcast_one_to_all(buffer)).tobytes())


def broadcast_checkpoint(loaded, template):
  """Process 0's (state, meta) or None, on every process; keys travel as key data."""
  meta = broadcast_json(loaded[1] if loaded is not None else None)
  if meta is None:
    return None
  leaves, treedef = jax.tree.flatten(template)
  mine = jax.tree.leaves(loaded[0]) if loaded is not None else None
  out = []
  for i, want in enumerate(leaves):
    is_key = jax.dtypes.issubdtype(want.dtype, jax.dtypes.prng_key)
    if mine is not None:
      value = np.asarray(jax.random.key_data(mine[i]) if is_key else mine[i])
    else:
      shape = jax.eval_shape(jax.random.key_data, want).shape if is_key else want.shape
      value = np.zeros(shape, np.uint32 if is_key else want.dtype)
    value = np.asarray(multihost_utils.broadcast_one_to_all(value))
    out.append(jax.random.wrap_key_data(value, impl=meta["key_impls"][str(i)]) if is_key else value)
  return jax.tree.unflatten(treedef, out), meta


def any_process(flag: bool) -> bool:
  """True if ``flag`` is true on any process (a collective when there are several).

  Example:
    >>> any_process(False), any_process(True)
    (False, True)
  """
  if jax.process_count() == 1:
    return bool(flag)
  return bool(np.asarray(multihost_utils.process_allgather(np.int32(flag))).any())
