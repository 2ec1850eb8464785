"""Run records on disk: ``record.json`` plus ``params.npz``, written atomically.

A run directory holds:

* ``params.npz``: the trained parameters, one array per leaf, keyed by its
  '/'-joined path (``hidden_0/kernel``); loads with plain ``numpy.load``, no
  pickled code.
* ``record.json``: config, history, final metrics, status, wall time, versions.

Each file is written to a temporary name and moved into place with
``os.replace``, and ``record.json`` goes last: a directory with a
``record.json`` is a complete record, and an interrupted write leaves at most
a stray temporary file, never a half-written record.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import tempfile
from typing import Any

import jax
import numpy as np

from htsgd_jax import columns as columns_lib

RECORD_FILE = "record.json"
PARAMS_FILE = "params.npz"
FINISHED = ("converged", "max_steps", "diverged")


def _atomic_write(path: pathlib.Path, write) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    pathlib.Path(tmp).unlink(missing_ok=True)
    raise


def _json_safe(obj):
  """Non-finite floats become strings ("nan", "inf"): JSON has no NaN."""
  if isinstance(obj, dict):
    return {str(k): _json_safe(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_json_safe(v) for v in obj]
  if isinstance(obj, (np.generic, np.ndarray)):
    return _json_safe(obj.tolist())
  if isinstance(obj, float) and not math.isfinite(obj):
    return str(obj)
  return obj


def flatten_params(params) -> dict[str, np.ndarray]:
  """Maps '/'-joined leaf paths to numpy arrays.

  Example:
    >>> flatten_params({"hidden_0": {"kernel": np.ones((2, 2))}})["hidden_0/kernel"].shape
    (2, 2)
  """
  flat = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    flat[columns_lib.path_name(path)] = np.asarray(leaf)
  return flat


def unflatten_params(flat: dict[str, np.ndarray]) -> dict:
  """Inverse of :func:`flatten_params` for nested dicts.

  Example:
    >>> unflatten_params({"a/b": 1})
    {'a': {'b': 1}}
  """
  tree: dict = {}
  for name, value in flat.items():
    node = tree
    *parents, leaf = name.split("/")
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = value
  return tree


def write_run(run_dir, record: dict[str, Any], params=None) -> pathlib.Path:
  """Writes ``params.npz`` (if given) then ``record.json``, each atomically.

  Example:
    >>> import tempfile
    >>> run = write_run(tempfile.mkdtemp(), {"status": "converged"}, {"w": np.ones(2)})
    >>> is_finished(run), read_record(run)["status"], read_params(run)["w"].tolist()
    (True, 'converged', [1.0, 1.0])
  """
  run_dir = pathlib.Path(run_dir)
  if params is not None:
    flat = flatten_params(params)
    _atomic_write(run_dir / PARAMS_FILE, lambda f: np.savez(f, **flat))
  write_json(run_dir / RECORD_FILE, record)
  return run_dir


def write_json(path, obj) -> None:
  """Writes ``obj`` as JSON to ``path`` atomically (non-finite floats as strings).

  Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.json"
    >>> write_json(path, {"loss": float("nan")})
    >>> json.loads(path.read_text())
    {'loss': 'nan'}
  """
  text = json.dumps(_json_safe(obj), indent=1, sort_keys=True)
  _atomic_write(pathlib.Path(path), lambda f: f.write(text.encode()))


def read_record(run_dir) -> dict[str, Any] | None:
  """Returns the run's record, or None if the directory holds no complete record.

  Example:
    >>> import tempfile
    >>> read_record(tempfile.mkdtemp()) is None
    True
  """
  path = pathlib.Path(run_dir) / RECORD_FILE
  if not path.is_file():
    return None
  return json.loads(path.read_text())


def read_params(run_dir) -> dict:
  """Loads ``params.npz`` back into a nested dict of numpy arrays (see :func:`write_run`).

  Example:
    >>> import tempfile
    >>> read_params(write_run(tempfile.mkdtemp(), {}, {"a": {"b": np.zeros(1)}}))["a"]["b"]
    array([0.])
  """
  path = pathlib.Path(run_dir) / PARAMS_FILE
  if not path.is_file():
    raise FileNotFoundError(f"no {PARAMS_FILE} in {run_dir}: the run did not finish writing"
                            " its parameters; rerun it.")
  with np.load(path) as npz:
    return unflatten_params({k: npz[k] for k in npz.files})


def is_finished(run_dir, record: dict[str, Any] | None = None) -> bool:
  """True if the directory holds a complete record of a run that ended by itself.

  Pass ``record`` if it was already read from ``run_dir``, to save reading it again.

  Example:
    >>> import tempfile
    >>> is_finished(write_run(tempfile.mkdtemp(), {"status": "interrupted"}, {}))
    False
  """
  record = read_record(run_dir) if record is None else record
  return bool(record) and record.get("status") in FINISHED and (
      pathlib.Path(run_dir) / PARAMS_FILE).is_file()
