"""Run records on disk: ``record.json`` plus ``params.npz``, written atomically.

A run directory holds:

* ``params.npz``: the trained parameters, one array per leaf, keyed by its
  '/'-joined path (``hidden_0/kernel``); loads with plain ``numpy.load``, no
  pickled code.
* ``record.json``: config, history, final metrics, status, wall time, versions,
  the SHA-256 of ``params.npz`` (``params_sha256``) and a ``checksum`` of the
  record itself.

Nothing in a run directory is trusted unread: :func:`read_record` checks the
record's checksum (a hand-edited result or status is refused like a
truncated file), and :func:`read_params` checks the parameters against the
record's ``params_sha256``. Hashing costs milliseconds per megabyte, nothing
next to training. Other JSON files (caches) can be sealed the same way with
:func:`sealed` and checked with :func:`check_seal`.

Each file is written to a temporary name and moved into place with
``os.replace``, and ``record.json`` goes last: a directory with a
``record.json`` is a complete record, and an interrupted write leaves at most
a stray temporary file, never a half-written record. Files are readable like
any other (mode 0644 less the umask).

A file that cannot be read back (truncated, edited, foreign) raises
:class:`DamagedFileError`, whose message names the file and the way out.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import pathlib
import tempfile
import zipfile
from typing import Any

import jax
import numpy as np

from htsgd_jax import columns as columns_lib

RECORD_FILE = "record.json"
PARAMS_FILE = "params.npz"
FINISHED = ("converged", "max_steps", "diverged")
# What a user does with a damaged run file; a command adds its own way (experiments.cli).
RETRAIN_HINT = "delete it to retrain the run"
CHECKSUM_KEY = "checksum"
PARAMS_CHECKSUM_KEY = "params_sha256"


class DamagedFileError(ValueError):
  """A run file exists but cannot be read back; the message names it and the way out."""

  def __init__(self, path, reason, hint: str = RETRAIN_HINT):
    self.path, self.reason, self.hint = pathlib.Path(path), reason, hint
    super().__init__(self.message(hint))

  def message(self, hint: str) -> str:
    """The message with another way out than the one it was raised with."""
    return f"{self.path} is damaged or not a run file ({self.reason}); {hint}."


class UnsealedRecordError(DamagedFileError):
  """A JSON file without the checksum that :func:`sealed` adds: its contents cannot be verified."""


def _file_mode() -> int:
  umask = os.umask(0)
  os.umask(umask)
  return 0o666 & ~umask


def atomic_write(path, write) -> None:
  """Writes a file through ``write(binary_file)`` to a temporary name, then renames it.

  Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "x.bin"
    >>> atomic_write(path, lambda f: f.write(b"ok"))
    >>> path.read_bytes(), oct(path.stat().st_mode & 0o644)
    (b'ok', '0o644')
  """
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    # mkstemp makes 0600 files; run files are shared like any other output.
    os.fchmod(fd, _file_mode())
    with os.fdopen(fd, "wb") as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except OSError as err:  # name the file the user knows, not the temporary one
    pathlib.Path(tmp).unlink(missing_ok=True)
    raise OSError(err.errno, err.strerror or str(err), str(path)) from err
  except BaseException:
    pathlib.Path(tmp).unlink(missing_ok=True)
    raise


def json_safe(obj):
  """Non-finite floats become strings ("nan", "inf"): JSON has no NaN."""
  if isinstance(obj, dict):
    return {str(k): json_safe(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [json_safe(v) for v in obj]
  if isinstance(obj, (np.generic, np.ndarray)):
    return json_safe(obj.tolist())
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


def checksum(obj: dict[str, Any]) -> str:
  """SHA-256 of ``obj`` as canonical JSON, its own ``checksum`` entry left out.

  Example:
    >>> checksum({"a": 1}) == checksum({"a": 1, "checksum": "x"}), len(checksum({}))
    (True, 64)
  """
  body = {k: v for k, v in obj.items() if k != CHECKSUM_KEY}
  text = json.dumps(json_safe(body), sort_keys=True, separators=(",", ":"))
  return hashlib.sha256(text.encode()).hexdigest()


def sealed(obj: dict[str, Any]) -> dict[str, Any]:
  """``obj`` with its :func:`checksum`, so that an edit can be told from the original.

  Example:
    >>> check_seal(sealed({"acc": 97.0}), "a.json")
    >>> check_seal(dict(sealed({"acc": 97.0}), acc=99.99), "a.json")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    htsgd_jax.records.DamagedFileError: a.json is damaged ... edited since it was written?); ...
  """
  return dict(obj, **{CHECKSUM_KEY: checksum(obj)})


def check_seal(obj: dict[str, Any], path, hint: str = RETRAIN_HINT) -> None:
  """Raises :class:`DamagedFileError` unless ``obj`` carries its own :func:`checksum`."""
  if CHECKSUM_KEY not in obj:
    raise UnsealedRecordError(
      path, "it carries no checksum: written by hand or by htsgd-jax before 0.1.0", hint
    )
  if obj[CHECKSUM_KEY] != checksum(obj):
    raise DamagedFileError(
      path, "its contents do not match their checksum: edited since it was written?", hint
    )


def file_sha256(path) -> str:
  """SHA-256 of a file's bytes, read in 1 MiB blocks.

  Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "x"
    >>> _ = path.write_bytes(b"")
    >>> file_sha256(path)[:12]
    'e3b0c44298fc'
  """
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    while block := f.read(1 << 20):
      digest.update(block)
  return digest.hexdigest()


def write_run(run_dir, record: dict[str, Any], params=None) -> pathlib.Path:
  """Writes ``params.npz`` (if given) then ``record.json``, each atomically.

  The record is written :func:`sealed`, with the parameters' SHA-256.

  Example:
    >>> import tempfile
    >>> run = write_run(tempfile.mkdtemp(), {"status": "converged"}, {"w": np.ones(2)})
    >>> is_finished(run), read_record(run)["status"], read_params(run)["w"].tolist()
    (True, 'converged', [1.0, 1.0])
  """
  run_dir = pathlib.Path(run_dir)
  run_dir.mkdir(parents=True, exist_ok=True)
  record = {k: v for k, v in record.items() if k not in (CHECKSUM_KEY, PARAMS_CHECKSUM_KEY)}
  if params is not None:
    buffer = io.BytesIO()
    np.savez(buffer, **flatten_params(params))
    data = buffer.getbuffer()
    atomic_write(run_dir / PARAMS_FILE, lambda f: f.write(data))
    record[PARAMS_CHECKSUM_KEY] = hashlib.sha256(data).hexdigest()
  write_json(run_dir / RECORD_FILE, sealed(record))
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
  text = json.dumps(json_safe(obj), indent=1, sort_keys=True)
  atomic_write(pathlib.Path(path), lambda f: f.write(text.encode()))


def read_record(run_dir) -> dict[str, Any] | None:
  """Returns the run's record, or None if the directory holds no complete record.

  A record that fails its checksum (:func:`check_seal`) raises :class:`DamagedFileError`.

  Example:
    >>> import tempfile
    >>> read_record(tempfile.mkdtemp()) is None
    True
  """
  path = pathlib.Path(run_dir) / RECORD_FILE
  if not path.is_file():
    return None
  record = read_json(path)
  check_seal(record, path)
  return record


def read_json(path, hint: str = RETRAIN_HINT) -> Any:
  """Reads a JSON file written by :func:`write_json`; a damaged file raises DamagedFileError.

  Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.json"
    >>> _ = path.write_text('{"status": "conv')
    >>> read_json(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    htsgd_jax.records.DamagedFileError: ... is damaged or not a run file (invalid JSON: ...); ...
  """
  try:
    obj = json.loads(pathlib.Path(path).read_text())
  except (json.JSONDecodeError, UnicodeDecodeError) as err:
    raise DamagedFileError(path, f"invalid JSON: {err}", hint) from None
  if not isinstance(obj, dict):
    raise DamagedFileError(path, "not a JSON object", hint)
  return obj


def read_params(run_dir, record: dict[str, Any] | None = None) -> dict:
  """Loads ``params.npz`` back into a nested dict of numpy arrays (see :func:`write_run`).

  With the run's ``record``, the file must have the SHA-256 the record holds
  (:func:`verify_params`).

  Example:
    >>> import tempfile
    >>> read_params(write_run(tempfile.mkdtemp(), {}, {"a": {"b": np.zeros(1)}}))["a"]["b"]
    array([0.])
  """
  path = pathlib.Path(run_dir) / PARAMS_FILE
  if not path.is_file():
    raise FileNotFoundError(
      f"no {PARAMS_FILE} in {run_dir}: the run did not finish writing its parameters; rerun it."
    )
  if record is not None:
    verify_params(run_dir, record)
  try:
    with np.load(path) as npz:
      return unflatten_params({k: npz[k] for k in npz.files})
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
    raise DamagedFileError(path, f"{type(err).__name__}: {err}") from None


def verify_params(run_dir, record: dict[str, Any]) -> None:
  """Raises :class:`DamagedFileError` unless ``params.npz`` has the record's SHA-256.

  Example:
    >>> import tempfile
    >>> run = write_run(tempfile.mkdtemp(), {}, {"w": np.ones(2)})
    >>> verify_params(run, read_record(run))
    >>> _ = (run / PARAMS_FILE).write_bytes(b"PK")
    >>> verify_params(run, read_record(run))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    htsgd_jax.records.DamagedFileError: ... (its SHA-256 is not the one in record.json); ...
  """
  path = pathlib.Path(run_dir) / PARAMS_FILE
  want = record.get(PARAMS_CHECKSUM_KEY)
  if want is None:
    raise DamagedFileError(path, f"{RECORD_FILE} holds no checksum of it")
  if not path.is_file() or file_sha256(path) != want:
    raise DamagedFileError(path, f"its SHA-256 is not the one in {RECORD_FILE}")


_UNREAD: Any = object()


def is_finished(run_dir, record: dict[str, Any] | None = _UNREAD) -> bool:
  """True if the directory holds a complete record of a run that ended by itself.

  Pass ``record`` if it was already read from ``run_dir`` (None: there is
  none), to save reading it again.

  Example:
    >>> import tempfile
    >>> is_finished(write_run(tempfile.mkdtemp(), {"status": "interrupted"}, {}))
    False
  """
  record = read_record(run_dir) if record is _UNREAD else record
  return (
    bool(record)
    and record.get("status") in FINISHED
    and (pathlib.Path(run_dir) / PARAMS_FILE).is_file()
  )


def config_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
  """``name: old -> new`` for every field that differs between two config dicts.

  Example:
    >>> config_differences({"lr": 0.01, "seed": 1}, {"lr": 0.05, "seed": 1})
    ['lr: 0.01 -> 0.05']
  """
  return [
    f"{k}: {old.get(k, '(absent)')} -> {new.get(k, '(absent)')}"
    for k in sorted(set(old) | set(new))
    if old.get(k) != new.get(k)
  ]
