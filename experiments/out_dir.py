"""A command's output directory: made and proven writable before work starts, locked against a
second command, and cleared of what killed writes left behind.

An output directory belongs to one command at a time: :func:`prepare_out_dir`
takes an advisory lock (``OUT/.lock``, naming the process) that a second
command is refused on; the kernel drops it when its process ends, however it
ends, so a dead process's lock is simply taken over.
"""

from __future__ import annotations

import fcntl
import os
import pathlib
import sys

from experiments.cli import usage_error

LOCK_FILE = ".lock"
_held_locks: dict[pathlib.Path, int] = {}  # output directory -> open, locked file


def prepare_out_dir(path) -> pathlib.Path:
  """Creates ``path`` and proves it writable now, not after hours of training.

  With several processes only process 0 writes, so only it checks.

  Example:
    >>> import tempfile
    >>> prepare_out_dir(tempfile.mkdtemp() + "/a/b").is_dir()
    True
  """
  import jax

  from experiments import hosts

  path = pathlib.Path(path)
  hosts.note_out_dir(path)
  if jax.process_index() != 0:
    return path
  probe = path / ".write-test"
  try:
    path.mkdir(parents=True, exist_ok=True)
    probe.write_bytes(b"")
    probe.unlink()
  except OSError as err:
    usage_error(f"cannot write to {path} ({err.strerror or err}); choose another --out.")
  lock_out_dir(path)
  remove_stale_temporaries(path)
  return path


def lock_out_dir(path) -> None:
  """Takes ``path``'s advisory lock for this process, or refuses naming the holder.

  Example:
    >>> import tempfile
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> lock_out_dir(out); (out / LOCK_FILE).read_text().startswith("pid ")
    True
    >>> release_out_dirs()
  """
  path = pathlib.Path(path).resolve()
  if path in _held_locks:
    return
  fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    holder = os.read(fd, 4096).decode(errors="replace").strip() or "another process"
    os.close(fd)
    usage_error(
      f"{path} is in use: {holder} is using it. Wait for it to end (its runs then count"
      " as finished here), or choose another --out."
    )
  os.ftruncate(fd, 0)
  os.write(fd, f"pid {os.getpid()} ({' '.join(sys.argv)})".encode())
  _held_locks[path] = fd


def release_out_dirs() -> None:
  """Releases every output directory this process locked."""
  while _held_locks:
    os.close(_held_locks.popitem()[1])


def remove_stale_temporaries(path) -> None:
  """Removes what killed writes left under ``path``: ``.NAME.*.tmp`` files, then empty folders.

  Only the lock holder calls this, so no write of another command is in flight.
  """
  path = pathlib.Path(path)
  for tmp in list(path.rglob(".*.tmp")):
    tmp.unlink(missing_ok=True)
    for folder in tmp.parents:
      if folder == path or any(folder.iterdir()):
        break
      folder.rmdir()
