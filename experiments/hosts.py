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

import argparse
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

from experiments.cli import usage_error

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


# ------------------------------------------------ the flags, and joining the processes
CLUSTER_VARIABLES = {"SLURM_NTASKS": "SLURM", "OMPI_COMM_WORLD_SIZE": "Open MPI", "PMI_SIZE": "MPI"}


def detected_cluster(environ) -> str | None:
  """The kind of multi-process job the environment describes, or None.

  Example:
    >>> detected_cluster({"SLURM_NTASKS": "4"}), detected_cluster({"SLURM_NTASKS": "1"})
    ('SLURM', None)
    >>> detected_cluster({"TPU_WORKER_HOSTNAMES": "t0,t1"})
    'TPU pod'
  """
  for var, name in CLUSTER_VARIABLES.items():
    value = environ.get(var, "1") or "1"
    if value.isdigit() and int(value) > 1:
      return name
  if "," in environ.get("TPU_WORKER_HOSTNAMES", ""):
    return "TPU pod"
  return None


def add_distributed_flags(parser: argparse.ArgumentParser) -> None:
  """Flags for training one grid across processes or as a job array."""
  group = parser.add_argument_group(
    "several processes",
    "one sweep across hosts with jax.distributed (the arguments of"
    " jax.distributed.initialize; found automatically under SLURM and Open MPI), or a job"
    " array of independent shards",
  )
  group.add_argument(
    "--coordinator", default=None, metavar="HOST:PORT", help="address of process 0's coordinator"
  )
  group.add_argument(
    "--num-processes",
    type=int,
    default=None,
    help="how many processes the job has (with --coordinator)",
  )
  group.add_argument(
    "--process-id", type=int, default=None, help="this process's index in [0, --num-processes)"
  )
  group.add_argument(
    "--connect-timeout-s",
    type=float,
    default=CONNECT_TIMEOUT_S,
    help="how long the processes wait for each other to join; one that has not joined by"
    " then ends every process in one line (default: %(default)s, for cluster queues)",
  )
  group.add_argument(
    "--peer-timeout-s",
    type=float,
    default=PEER_TIMEOUT_S,
    help="how soon a silent process counts as lost: every other process then ends in one"
    " line naming it, the last checkpoint and the command that resumes (default:"
    " %(default)s)",
  )
  group.add_argument(
    "--shard",
    default=None,
    metavar="I/N",
    help="train only shard I of N (0 <= I < N) of the grid's compiled programs,"
    " without collectives; then run once more without --shard, or with"
    " --report-only, to build the reports from every shard's records",
  )
  group.add_argument(
    "--report-only",
    action="store_true",
    help="train nothing: analyse the finished runs and write the reports",
  )


def parse_shard(text: str | None) -> tuple[int, int] | None:
  """``"I/N"`` as ``(I, N)``, refused unless ``0 <= I < N``.

  Example:
    >>> parse_shard("1/4")
    (1, 4)
  """
  if text is None:
    return None
  try:
    index, count = (int(part) for part in text.split("/"))
  except ValueError:
    usage_error(f"--shard takes I/N, e.g. 0/4; got {text!r}.")
  if not 0 <= index < count:
    usage_error(f"--shard I/N needs 0 <= I < N; got {text!r}.")
  return index, count


def init_distributed(args: argparse.Namespace, module: str, argv=None) -> None:
  """Joins the processes of one job (before anything touches a JAX device).

  With ``--coordinator`` the flags are passed to ``jax.distributed.initialize``;
  without, a SLURM or Open MPI job of several tasks, or a TPU pod of several
  hosts, is detected from its environment and ``jax.distributed.initialize()``
  finds the rest. Either way the command (``python -m module argv``) then
  runs supervised (:func:`supervise`): this call runs it in a worker
  process and exits with its status, so that a lost process ends this one
  in one line.
  """
  explicit = (args.coordinator, args.num_processes, args.process_id)
  cluster = None
  if any(v is not None for v in explicit):
    if None in explicit:
      usage_error("--coordinator, --num-processes and --process-id go together.")
    if args.shard:
      usage_error("--shard trains independently: it takes no --coordinator.")
    if not 0 <= args.process_id < args.num_processes:
      usage_error(f"--process-id must lie in [0, {args.num_processes}); got {args.process_id}.")
  else:
    cluster = detected_cluster(os.environ)
    if not cluster or args.shard:
      return
  for flag in ("connect_timeout_s", "peer_timeout_s"):
    if not getattr(args, flag) >= 1:
      usage_error(f"--{flag.replace('_', '-')} must be >= 1; got {getattr(args, flag)}.")
  timeouts = (int(args.connect_timeout_s), int(args.peer_timeout_s))
  if not is_worker():
    argv = list(sys.argv[1:] if argv is None else argv)
    job = (args.process_id, args.num_processes)
    raise SystemExit(supervise(module, argv, job, timeouts))
  start_worker_logging()
  import jax

  if cluster:
    print(f"{cluster} job of several tasks: joining them with jax.distributed")
  jax.distributed.initialize(
    *explicit if not cluster else (None, None, None),
    initialization_timeout=timeouts[0],
    heartbeat_timeout_seconds=timeouts[1],
  )
