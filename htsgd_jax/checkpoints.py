"""Checkpoints of a training program's whole state, for resuming bit for bit.

A checkpoint directory holds:

* ``state-<step>.npz``: every array of the state, in flattening order:
  parameters, optimiser states with their PRNG keys (stored as key data),
  each run's data order and data key, step counts and stop flags;
* ``checkpoint.json``: what the host needs besides: the step, the history so
  far, elapsed time, the fingerprint of the runs, the npz file's name.

Both are written atomically and the JSON goes last, naming its npz: a
checkpoint is complete or absent, and a run killed mid-write (even with
SIGKILL) still has the previous one. Older npz files are removed after.

Restoring needs a *template* of the state (``jax.eval_shape`` of its init):
its tree structure, shapes and dtypes, which every stored array must match.
Plain ``.npz`` files keep checkpoints readable with numpy alone.
"""

from __future__ import annotations

import pathlib
import zipfile
from typing import Any

import jax
import numpy as np

from htsgd_jax import records

META_FILE = "checkpoint.json"
RESTART_HINT = "delete the checkpoint directory to start the training over"


def _is_key(leaf) -> bool:
  return jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def save(directory, state, meta: dict[str, Any], step: int) -> pathlib.Path:
  """Writes ``state`` (a pytree of arrays) and ``meta`` (JSON-able) as one checkpoint.

  Example:
    >>> import tempfile, jax, jax.numpy as jnp
    >>> d = tempfile.mkdtemp()
    >>> state = {"w": jnp.arange(3.0), "key": jax.random.key(1)}
    >>> _ = save(d, state, {"note": "hi"}, step=10)
    >>> restored, meta = load(d, jax.eval_shape(lambda: state))
    >>> restored["w"].tolist(), meta["note"], meta["step"]
    ([0.0, 1.0, 2.0], 'hi', 10)
  """
  directory = pathlib.Path(directory)
  leaves = jax.tree.leaves(jax.device_get(state))
  key_impls = {i: str(jax.random.key_impl(x)) for i, x in enumerate(leaves) if _is_key(x)}
  arrays = {
    f"leaf_{i}": np.asarray(jax.random.key_data(x) if i in key_impls else x)
    for i, x in enumerate(leaves)
  }
  name = f"state-{step}.npz"
  records.atomic_write(directory / name, lambda f: np.savez(f, **arrays))
  records.write_json(
    directory / META_FILE,
    dict(
      meta,
      step=step,
      state_file=name,
      n_leaves=len(leaves),
      key_impls={str(i): impl for i, impl in key_impls.items()},
    ),
  )
  for old in directory.glob("state-*.npz"):
    if old.name != name:
      old.unlink(missing_ok=True)
  return directory


def load(directory, template) -> tuple[Any, dict[str, Any]] | None:
  """The checkpoint in ``directory`` as (state, meta), or None if there is none.

  ``template`` is a pytree of arrays or ``jax.ShapeDtypeStruct`` with the
  state's structure. A checkpoint that does not match it, or cannot be read,
  raises :class:`htsgd_jax.records.DamagedFileError`.

  Example:
    >>> import tempfile
    >>> load(tempfile.mkdtemp(), {}) is None
    True
  """
  directory = pathlib.Path(directory)
  meta_path = directory / META_FILE
  if not meta_path.is_file():
    return None
  meta = records.read_json(meta_path, RESTART_HINT)
  template_leaves, treedef = jax.tree.flatten(template)
  state_path = directory / str(meta.get("state_file", ""))
  if meta.get("n_leaves") != len(template_leaves):
    raise records.DamagedFileError(meta_path, "it holds the state of another program", RESTART_HINT)
  try:
    with np.load(state_path) as npz:
      stored = [npz[f"leaf_{i}"] for i in range(len(template_leaves))]
  except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
    raise records.DamagedFileError(
      state_path, f"{type(err).__name__}: {err}", RESTART_HINT
    ) from None
  leaves = []
  for i, (want, got) in enumerate(zip(template_leaves, stored)):
    impl = meta["key_impls"].get(str(i))
    leaf = jax.random.wrap_key_data(got, impl=impl) if impl else got
    if leaf.shape != want.shape or leaf.dtype != want.dtype:
      raise records.DamagedFileError(
        state_path,
        f"array {i} is {leaf.dtype}{list(leaf.shape)}, the program's is"
        f" {want.dtype}{list(want.shape)}",
        RESTART_HINT,
      )
    leaves.append(leaf)
  return jax.tree.unflatten(treedef, leaves), meta


def clear(directory) -> None:
  """Removes a checkpoint (after its runs' records are written).

  Example:
    >>> import tempfile, pathlib, jax.numpy as jnp
    >>> d = save(tempfile.mkdtemp(), {"w": jnp.zeros(1)}, {}, step=1)
    >>> clear(d); pathlib.Path(d).exists()
    False
  """
  directory = pathlib.Path(directory)
  (directory / META_FILE).unlink(missing_ok=True)
  for old in [*directory.glob("state-*.npz"), *directory.glob(".*.tmp")]:
    old.unlink(missing_ok=True)  # the .tmp: writes that a SIGKILL interrupted
  try:
    directory.rmdir()
  except OSError:
    pass  # not empty (a user's file) or already gone
