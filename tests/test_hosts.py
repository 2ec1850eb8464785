"""A lost, missing or silent process ends every survivor in one line of ours.

Two real CPU processes join over a loopback coordinator, as two hosts would;
one is killed (SIGKILL: a host gone, an OOM kill) or never started. Before
experiments.hosts, the survivor went on for ~80 s (~300 s for a missing
peer), then aborted (exit -6) with XLA's C++ stack trace and no line of ours.
"""

import os
import signal
import subprocess
import sys
import time

import pytest
from test_distributed import GRID, ROOT, _finish, _free_port, _same_results, _start

from experiments import hosts

LONG = [a if a != "40" else "1500" for a in GRID]
LONG[LONG.index("--widths") + 1 : LONG.index("--seeds")] = ["16"]
FAST_TIMEOUTS = ["--peer-timeout-s", "10", "--connect-timeout-s", "10"]


def _pair(argv, out, port, ids=(0, 1)):
  joined = ["--out", str(out), "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2"]
  return [_start(argv + joined + ["--process-id", str(i)]) for i in ids]


def _ours_alone(output: str) -> str:
  """The survivor's last line; asserts it is ours and that no stack trace came with it."""
  assert "Traceback" not in output and "Check failure" not in output and "@ 0x" not in output
  line = output.strip().splitlines()[-1]
  assert line.startswith("error: ") and "rerun `python -m experiments.sweep" in line, output
  return line


def _wait_for_a_checkpoint(pair, out):
  deadline = time.time() + 180
  while not list(out.glob(".checkpoints/*/checkpoint.json")):
    assert all(p.poll() is None for p in pair) and time.time() < deadline
    time.sleep(0.1)


def _kill_when_checkpointed(pair, out, victim):
  _wait_for_a_checkpoint(pair, out)
  pair[victim].send_signal(signal.SIGKILL)
  killed = time.time()
  survivor = pair[1 - victim]
  output = survivor.communicate(timeout=150)[0]
  return output, survivor.returncode, time.time() - killed


@pytest.mark.slow
@pytest.mark.parametrize("victim, said", [(1, "process 1 stopped"), (0, "process 0, stopped")])
def test_a_killed_process_ends_the_other_in_one_line_and_the_rerun_matches_one_process(
  tmp_path, victim, said
):
  argv = LONG + ["--checkpoint-every-s", "0"] + FAST_TIMEOUTS
  port = _free_port()
  output, code, waited = _kill_when_checkpointed(
    _pair(argv, tmp_path / "two", port), tmp_path / "two", victim
  )
  line = _ours_alone(output)
  assert code == hosts.PEER_LOST and said in line and "the last checkpoint, at step" in line
  assert waited < 60  # a lost peer is noticed within the peer timeout, and sooner mid-collective
  resumed = _pair(argv, tmp_path / "two", _free_port())
  assert "from their checkpoint" in _finish(resumed[0])
  _finish(resumed[1])
  _finish(_start(LONG + ["--out", str(tmp_path / "one")]))
  _same_results(tmp_path / "two", tmp_path / "one", atol=0, n_runs=4)


def test_a_process_whose_peer_never_comes_ends_in_one_line_then_the_job_runs(tmp_path):
  argv = GRID + FAST_TIMEOUTS
  port = _free_port()
  (alone,) = _pair(argv, tmp_path / "two", port, ids=(0,))
  started = time.time()
  output = alone.communicate(timeout=120)[0]
  line = _ours_alone(output)
  assert alone.returncode == hosts.PEER_LOST
  assert "process 1 never connected (waited 10 s" in line and "no checkpoint" in line
  assert time.time() - started < 60
  for p in _pair(argv, tmp_path / "two", _free_port()):
    _finish(p)


def test_signals_reach_the_worker_through_its_supervisor(tmp_path):
  """SIGTERM to the process a scheduler started: checkpoint, exit 143, as in one process."""
  argv = LONG + ["--checkpoint-every-s", "0"] + FAST_TIMEOUTS
  pair = _pair(argv, tmp_path / "two", _free_port())
  _wait_for_a_checkpoint(pair, tmp_path / "two")
  for p in pair:
    p.send_signal(signal.SIGTERM)
  assert [p.wait(timeout=120) for p in pair] == [143, 143]


@pytest.mark.parametrize(
  "log, job, expected",
  [
    ("E1204 ... Task 1 heartbeat timeout. This indicates", (0, 2), "process 1 stopped answering"),
    (
      "F1204 client.h:80] Terminating\nRPC: /xla.CoordinationService/RegisterTask",
      (0, 2),
      "process 1 never connected",
    ),
    (
      "UNAVAILABLE: Socket closed ... Gloo all-reduce failed",
      (1, 2),
      "the coordinator, process 0, stopped",
    ),
    (
      "ValueError: UNKNOWN: Gloo all-reduce failed: Connection reset by peer",
      (0, 2),
      "process 1 stopped answering (its connection closed",
    ),
    ("ValueError: UNKNOWN: Gloo all-reduce failed", (0, 4), "another process stopped"),
    ("ValueError: UNKNOWN: Gloo all-reduce failed", (1, 2), "the coordinator, process 0, stopped"),
  ],
)
def test_the_line_names_what_the_runtime_logged(log, job, expected, tmp_path):
  line = hosts.fault_line(log, -6, job, (10, 10), str(tmp_path), "python -m x", "LOG")
  assert line.startswith("error: " + expected), line
  assert line.endswith("detail in LOG") and "no checkpoint was written yet" in line


def test_timeouts_are_checked_before_anything_starts(tmp_path):
  env = dict(os.environ, PYTHONUNBUFFERED="1")
  proc = subprocess.run(
    [
      sys.executable,
      "-m",
      "experiments.sweep",
      *GRID,
      "--out",
      str(tmp_path),
      "--coordinator",
      "127.0.0.1:1",
      "--num-processes",
      "2",
      "--process-id",
      "0",
      "--peer-timeout-s",
      "0",
    ],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=60,
  )
  assert proc.returncode == 2 and "--peer-timeout-s must be >= 1; got 0.0" in proc.stderr
