"""The processes of one job: joining them, and ending each survivor in one line when one is lost.

A command of several processes (``--coordinator``, or a detected SLURM / MPI
job) runs as a *supervisor* and a *worker*: the worker is the same command
in a child process, whose C-level stderr (where XLA's runtime logs, and
aborts with a C++ stack trace when a peer is lost) goes to a log file. Our
own messages and the worker's Python warnings stay on the terminal. When the
worker ends because a peer stopped answering, never connected, or the
coordinator went away, the supervisor prints one line of ours: what
happened, where the last checkpoint is, and the command that resumes (the
same on every process); the log file holds the detail. Signals reach the
worker through the supervisor, and the worker dies with its supervisor
(a host that goes away takes both).

Timeouts: ``--connect-timeout-s`` (how long processes wait for each other
to join) and ``--peer-timeout-s`` (how soon a silent process counts as
lost), passed to ``jax.distributed.initialize``.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import traceback

WORKER_ENV = "HTSGD_JAX_WORKER_STATUS"
# sysexits' EX_UNAVAILABLE: a service the command needs (another process) went away.
PEER_LOST = 69
CONNECT_TIMEOUT_S = 300
PEER_TIMEOUT_S = 60

# What the runtime says, in the log, about each fault (jax 0.10: gloo collectives and the
# coordination service).
_PEER_FAILURE_TEXT = (
  "Gloo",
  "coordination service",
  "CoordinationService",
  "heartbeat",
  "DEADLINE_EXCEEDED",
  "UNAVAILABLE",
  "Barrier timed out",
)


def is_worker() -> bool:
  """Whether this process is a supervised worker (see the module docstring)."""
  return WORKER_ENV in os.environ


def _status_path() -> pathlib.Path:
  return pathlib.Path(os.environ[WORKER_ENV])


def note_out_dir(out: pathlib.Path) -> None:
  """Tells the supervisor where the command writes, so that it can name the last checkpoint."""
  if is_worker():
    _status_path().write_text(json.dumps(dict(out=str(pathlib.Path(out).resolve()))))


def start_worker_logging() -> None:
  """C-level stderr to the worker's log; Python's ``sys.stderr`` stays on the terminal."""
  log = _status_path().with_suffix(".log")
  terminal = os.dup(2)
  sys.stderr = os.fdopen(terminal, "w", buffering=1, encoding="utf-8", errors="replace")
  fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
  os.dup2(fd, 2)
  os.close(fd)


def is_peer_failure(err: BaseException) -> bool:
  """Whether an exception is the runtime's report of a lost or missing process.

  Example:
    >>> is_peer_failure(ValueError("UNKNOWN: Gloo all-reduce failed: Connection reset by peer"))
    True
    >>> is_peer_failure(ValueError("bad lr"))
    False
  """
  text = str(err)
  return any(t in text for t in _PEER_FAILURE_TEXT)


def worker_exit(err: BaseException) -> None:
  """Ends a worker that lost a peer at once, its traceback in the log.

  ``os._exit`` skips JAX's exit handler, which would wait for the lost
  process at a shutdown barrier and then abort.
  """
  sys.stdout.flush()
  with open(2, "w", closefd=False) as log:
    log.write("".join(traceback.format_exception(err)))
  os._exit(PEER_LOST)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
  try:
    import ctypes

    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
  except (OSError, AttributeError):
    pass  # not Linux: the worker outlives a killed supervisor


def supervise(module: str, argv: list[str], job: tuple, timeouts: tuple) -> int:
  """Runs ``python -m module argv`` as this process's worker; returns its exit status.

  A worker that lost a peer ends in one line of ours (see :func:`fault_line`).
  """
  stem = f"htsgd-jax-{module.rsplit('.', 1)[-1]}-process{job[0]}-{os.getpid()}"
  log = pathlib.Path(tempfile.gettempdir()) / f"{stem}.log"
  status = pathlib.Path(tempfile.gettempdir()) / f"{stem}.json"
  env = dict(os.environ, **{WORKER_ENV: str(status)})
  with open(log, "ab") as err:
    child = subprocess.Popen(
      [sys.executable, "-m", module, *argv],
      env=env,
      stderr=err,
      preexec_fn=_die_with_parent,
    )

  def forward(signum, frame):
    child.send_signal(signum)

  previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
  try:
    code = child.wait()
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)
  if code < 0 or code == PEER_LOST:
    text = log.read_text(errors="replace") if log.is_file() else ""
    out = json.loads(status.read_text()).get("out") if status.is_file() else None
    command = shlex.join(["python", "-m", module, *argv])
    print(
      fault_line(text, code, job, timeouts, out, command, log),
      file=sys.stderr,
      flush=True,
    )
    return PEER_LOST
  status.unlink(missing_ok=True)
  if code == 0:
    log.unlink(missing_ok=True)
  return code


def fault_line(text, code, job, timeouts, out, command, log) -> str:
  """One line: what happened, the last checkpoint, how to resume, where the detail is.

  ``job`` is ``(process_id, num_processes)`` (None where a cluster set them).

  Example:
    >>> fault_line("Task 1 heartbeat timeout", -6, (0, 3), (300, 60), None, "python -m x", "l")
    ... # doctest: +ELLIPSIS
    'error: process 1 stopped answering (silent for 60 s); ... rerun `python -m x` ... in l'
  """
  (me, count), (connect_s, peer_s) = job, timeouts
  others = [str(i) for i in range(count or 0) if i != me]

  def name(ids):
    return "the coordinator, process 0," if ids == ["0"] else f"process {', '.join(ids)}"

  other = name(others) if len(others) == 1 else "another process"
  heartbeat = re.findall(r"Task (\d+) heartbeat timeout|heartbeats\):\s*(\d+)", text)
  if "RegisterTask" in text or "Barrier timed out" in text:
    who = other if len(others) == 1 else "not every process"
    what = f"{who} never connected (waited {connect_s} s for every process to join)"
  elif ids := sorted({a or b for a, b in heartbeat} - {str(me)}):
    what = f"{name(ids)} stopped answering (silent for {peer_s} s)"
  elif me not in (0, None) and re.search(r"Socket closed|failed to connect", text):
    what = "the coordinator, process 0, stopped answering (its connection closed)"
  elif "Gloo" in text:
    what = f"{other} stopped answering (its connection closed mid-collective)"
  else:
    what = f"this process's worker ended with status {code}"
  return (
    f"error: {what}; {last_checkpoint(out)}; rerun `{command}` on every process to resume"
    f" (each with its own --process-id); detail in {log}"
  )


def last_checkpoint(out) -> str:
  """Where the newest checkpoint under ``out`` is, and its step, or that none is there.

  Example:
    >>> last_checkpoint(None)
    'no checkpoint was written yet (finished runs are kept)'
  """
  found = []
  if out:
    for meta in pathlib.Path(out).glob("**/.checkpoints/*/checkpoint.json"):
      try:
        found.append((meta.stat().st_mtime, json.loads(meta.read_text()).get("step"), meta.parent))
      except (OSError, ValueError):
        continue
  if not found:
    return "no checkpoint was written yet (finished runs are kept)"
  _, step, where = max(found)
  return f"the last checkpoint, at step {step}, is in {where} (work since then is lost)"
