"""Sweeps beyond one process: jax.distributed with 2 local processes, and job-array shards.

The 2-process test starts two CPU processes (one device each) that join over
a loopback coordinator with gloo collectives, as two hosts of a cluster
would, and compares their sweep run by run with the same sweep in one
process.
"""

import csv
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

from experiments import sweep
from htsgd_jax import records

ROOT = pathlib.Path(__file__).resolve().parents[1]
GRID = [
  "--dataset",
  "digits",
  "--lr",
  "0.1",
  "--batch-size",
  "100",
  "--eval-every",
  "10",
  "--widths",
  "16",
  "32",
  "--seeds",
  "1",
  "2",
  "--sigmas",
  "0",
  "0.05",
  "--noise-types",
  "2",
  "--max-steps",
  "40",
  "--target-accuracy",
  "none",
  "--no-progress",
]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _start(argv):
  env = dict(os.environ, PYTHONUNBUFFERED="1", XLA_FLAGS="--xla_force_host_platform_device_count=1")
  return subprocess.Popen(
    [sys.executable, "-m", "experiments.sweep", *argv],
    cwd=ROOT,
    env=env,
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
  )


def _start_pair(argv, out):
  """Processes 0 and 1 of one jax.distributed job over a loopback coordinator."""
  port = _free_port()
  joined = ["--out", str(out), "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2"]
  return [_start(argv + joined + ["--process-id", str(i)]) for i in (0, 1)]


def _finish(proc):
  output = proc.communicate(timeout=300)[0]
  assert proc.returncode == 0, output
  return output


def _runs(out):
  return sorted(p for p in out.iterdir() if (p / records.RECORD_FILE).is_file())


def _same_results(a_dir, b_dir, atol, n_runs=8):
  a_runs, b_runs = _runs(a_dir), _runs(b_dir)
  assert [p.name for p in a_runs] == [p.name for p in b_runs] and len(a_runs) == n_runs
  for a, b in zip(a_runs, b_runs):
    ra, rb = records.read_record(a), records.read_record(b)
    assert (ra["status"], ra["steps"]) == (rb["status"], rb["steps"]), a.name
    pa, pb = (
      records.flatten_params(records.read_params(a)),
      records.flatten_params(records.read_params(b)),
    )
    for name in pa:
      np.testing.assert_allclose(pa[name], pb[name], rtol=0, atol=atol, err_msg=f"{a.name} {name}")


def test_two_processes_equal_one_run_by_run_and_write_once(tmp_path):
  pair = _start_pair(GRID, tmp_path / "two")
  writer, other = (_finish(p) for p in pair)
  _finish(_start(GRID + ["--out", str(tmp_path / "one")]))
  # Across processes each device holds 2 of a program's 4 runs, in one process
  # all 4: the same arithmetic up to float32 reassociation.
  _same_results(tmp_path / "two", tmp_path / "one", atol=2e-5)
  assert "written to" in writer and "seed1" in writer
  assert "written to" not in other and "seed1" not in other  # process 1 writes nothing
  assert (tmp_path / "two" / "table.md").is_file()


def _rows(out):
  with open(out / "runs.csv") as f:
    return [
      {k: v for k, v in row.items() if k not in ("wall_time_s", "run_dir")}
      for row in csv.DictReader(f)
    ]


def test_shards_merge_into_the_same_table(tmp_path, capsys):
  shards = tmp_path / "shards"
  assert sweep.main(GRID + ["--out", str(shards), "--shard", "0/2"]) == 0
  assert "shard 0/2 done" in capsys.readouterr().out
  assert {p.name.split("_")[0] for p in _runs(shards)} == {"n16"}  # one program of two
  assert not (shards / "runs.csv").exists()
  assert sweep.main(GRID + ["--out", str(shards), "--shard", "1/2"]) == 0
  assert sweep.main(GRID + ["--out", str(shards), "--report-only"]) == 0
  assert sweep.main(GRID + ["--out", str(tmp_path / "whole")]) == 0
  assert _rows(shards) == _rows(tmp_path / "whole")
  _same_results(shards, tmp_path / "whole", atol=0)


@pytest.mark.parametrize(
  "flags, message",
  [
    (["--shard", "2/2"], "0 <= I < N"),
    (["--shard", "half"], "--shard takes I/N"),
    (["--coordinator", "127.0.0.1:1"], "go together"),
  ],
)
def test_distributed_flags_are_checked(tmp_path, flags, message):
  with pytest.raises(SystemExit, match=message):
    sweep.main(GRID + flags + ["--out", str(tmp_path)])


@pytest.mark.slow
def test_two_processes_resume_from_sigterm_bit_identical(tmp_path):
  # Process 0 reads the checkpoint and broadcasts it; the other needs no disk.
  import signal
  import time

  grid = [a if a != "40" else "1500" for a in GRID]
  grid[grid.index("--widths") + 1 : grid.index("--seeds")] = ["16"]

  stopped = _start_pair(grid + ["--checkpoint-every-s", "0"], tmp_path / "two")
  deadline = time.time() + 120
  while not list((tmp_path / "two").glob(".checkpoints/*/checkpoint.json")):
    assert stopped[0].poll() is None and time.time() < deadline
    time.sleep(0.05)
  for p in stopped:
    p.send_signal(signal.SIGTERM)
  assert [p.wait(timeout=120) for p in stopped] == [143, 143]
  resumed = _start_pair(grid, tmp_path / "two")
  assert "from their checkpoint" in _finish(resumed[0])
  _finish(resumed[1])
  _finish(_start(grid + ["--out", str(tmp_path / "one")]))
  _same_results(tmp_path / "two", tmp_path / "one", atol=0, n_runs=4)
  assert {records.read_record(p)["status"] for p in _runs(tmp_path / "two")} == {"max_steps"}
