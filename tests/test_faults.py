"""Fault injection: run files that cannot lie, faults that end in one clear line.

One test per case of the fault probe (damaged parameters behind a cached
analysis, hand-edited results, diverged runs in tables, a full disk, two
commands on one directory, stale temporary files, silent library misuse);
each failed on the code before the fix it guards.
"""

import errno
import json
import os
import subprocess
import sys
import time
import warnings

import pytest
from test_runs import ROOT, SMALL_SWEEP, _refused, _rows

from experiments import sweep
from htsgd_jax import checkpoints, records


def _swept(tmp_path, *extra):
  argv = SMALL_SWEEP + ["--out", str(tmp_path), *extra]
  assert sweep.main(argv) == 0
  return argv


def _finished_runs(out):
  return sorted(p for p in out.iterdir() if p.is_dir() and records.is_finished(p))


# ------------------------------------------------ 1. damaged params, cached analysis
def test_damaged_params_behind_a_cached_analysis_are_refused(tmp_path):
  argv = _swept(tmp_path)
  run = _finished_runs(tmp_path)[0]
  assert (run / "analysis.json").is_file()  # cached: the weights would not be read
  params = run / records.PARAMS_FILE
  params.write_bytes(params.read_bytes()[:200])
  _refused(sweep.main, argv, rf"{params} is damaged .*SHA-256.*pass --force to retrain")
  assert sweep.main(argv + ["--force"]) == 0
  assert sweep.main(argv) == 0


def test_an_analysis_of_other_parameters_is_not_reused(tmp_path):
  argv = _swept(tmp_path)
  run = _finished_runs(tmp_path)[0]
  cache = run / "analysis.json"
  analysis = json.loads(cache.read_text())
  analysis["fraction_pruned"] = 0.999
  cache.write_text(json.dumps(records.sealed(analysis)))  # a valid seal, a foreign checksum
  record = records.read_record(run)
  assert analysis["params_sha256"] == record["params_sha256"]
  analysis["params_sha256"] = "0" * 64
  cache.write_text(json.dumps(records.sealed(analysis)))
  assert sweep.main(argv) == 0
  assert all(float(r["fraction_pruned"]) < 0.999 for r in _rows(tmp_path))


# ----------------------------------------------------------- 2. hand-edited results
@pytest.mark.parametrize("victim", ["record.json", "analysis.json"])
def test_hand_edited_results_never_reach_the_tables(tmp_path, capsys, victim):
  argv = _swept(tmp_path)
  run = _finished_runs(tmp_path)[0]
  path = run / victim
  doc = json.loads(path.read_text())
  if victim == "record.json":
    doc["final"]["test_accuracy"], doc["status"] = 99.99, "converged"
    path.write_text(json.dumps(doc))
    _refused(sweep.main, argv, rf"{path} is damaged .*edited.*pass --force to retrain")
    assert sweep.main(argv + ["--force"]) == 0
  else:  # a cache: recomputed, with a note
    doc["fraction_pruned"] = 0.999
    path.write_text(json.dumps(doc))
    assert sweep.main(argv) == 0
    assert f"{path} is damaged; recomputing it" in capsys.readouterr().out
  table = (tmp_path / "table.md").read_text()
  assert "99.99" not in table and "99.90" not in table
  assert all(float(r["fraction_pruned"]) < 0.999 for r in _rows(tmp_path))


def test_a_record_without_checksum_is_refused_unless_its_run_is_unfinished(tmp_path):
  argv = _swept(tmp_path)
  path = _finished_runs(tmp_path)[0] / records.RECORD_FILE
  doc = json.loads(path.read_text())
  del doc["checksum"]
  path.write_text(json.dumps(doc))
  _refused(sweep.main, argv, rf"{path} is damaged .*no checksum")
  # An interrupted run's record (older versions wrote none with a checksum): retrained.
  path.write_text(json.dumps(dict(doc, status="interrupted")))
  assert sweep.main(argv) == 0
  assert records.read_record(path.parent)["status"] != "interrupted"


# ----------------------------------------------------------------- 3. diverged runs
@pytest.mark.parametrize(
  "flags",
  [["--lr", "1e6"], ["--alphas", "0.1", "--sigmas", "10"], ["--sigmas", "1e30"]],
  ids=["lr", "alpha", "sigma"],
)
def test_diverged_runs_are_counted_not_averaged(tmp_path, flags):
  argv = SMALL_SWEEP + ["--out", str(tmp_path)]
  # argparse keeps the last value of a repeated flag.
  with warnings.catch_warnings():
    warnings.simplefilter("error", RuntimeWarning)  # no numpy warning reaches the user
    assert sweep.main(argv + flags) == 0
  rows = _rows(tmp_path)
  diverged = [r for r in rows if r["status"] == "diverged"]
  assert diverged, "the setting should diverge"
  for r in diverged:
    for field in ("test_accuracy", "fraction_pruned", "pruned_test_accuracy", "relative_error"):
      assert r[field] == "", (field, r[field])
  for r in rows:
    assert not {v.lower() for v in r.values()} & {"nan", "inf", "-inf"}, r
  # The table counts them per arm; an arm with nothing else shows no number.
  by_arm = {}
  for r in rows:
    by_arm.setdefault(r["arm"], []).append(r["status"])
  table = (tmp_path / "table.md").read_text().splitlines()[2:]
  for line in table:
    cells = [c.strip() for c in line.strip("|").split("|")]
    statuses = by_arm[cells[2]]
    n = statuses.count("diverged")
    if n:
      assert f"{n} diverged" in cells[3], line
    if n == len(statuses):
      assert all(c == "—" for c in cells[4:]), line
  assert any("diverged" in line for line in table)


# --------------------------------------------------------------------- 4. full disk
def _disk_full_after(monkeypatch, n_writes: int):
  """Every file write after the first ``n_writes`` fails as a full disk does (at its fsync)."""
  real, calls = os.fsync, [0]

  def fsync(fd):
    calls[0] += 1
    if calls[0] > n_writes:
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return real(fd)

  monkeypatch.setattr(records.os, "fsync", fsync)


def test_a_full_disk_while_checkpointing_is_one_error_line_and_the_rerun_resumes(
  tmp_path, monkeypatch, capsys
):
  argv = SMALL_SWEEP + ["--out", str(tmp_path), "--checkpoint-every-s", "0"]
  argv[argv.index("20")] = "40"  # --max-steps: several checkpoints
  _disk_full_after(monkeypatch, 3)  # manifest, then two checkpoint files
  with pytest.raises(SystemExit) as stopped:
    sweep.main(argv)
  assert stopped.value.code not in (0, None)
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("error: "), err
  assert "No space left on device" in err[0] and "rerun the same command" in err[0]
  monkeypatch.undo()
  (meta,) = tmp_path.glob(f".checkpoints/*/{checkpoints.META_FILE}")  # the last one, intact
  assert records.read_json(meta)["t"] == 10
  assert sweep.main(argv) == 0
  assert "resuming" in capsys.readouterr().out
  assert not list(tmp_path.rglob("*.tmp"))


def test_a_full_disk_while_reporting_is_one_error_line(tmp_path, monkeypatch, capsys):
  argv = _swept(tmp_path)
  import matplotlib.figure

  def full(self, path, *a, **k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

  monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full)
  capsys.readouterr()
  with pytest.raises(SystemExit) as stopped:
    sweep.main(argv)
  assert stopped.value.code not in (0, None)
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "pruning_curves.png" in err[0] and "No space left" in err[0], err


# ---------------------------------------------------------- 5. two commands, one OUT
def test_a_second_command_on_the_same_out_is_refused_naming_the_first(tmp_path):
  out = tmp_path / "out"
  argv = [
    sys.executable,
    "-m",
    "experiments.sweep",
    *SMALL_SWEEP,
    "--out",
    str(out),
  ]
  argv[argv.index("20")] = "100000"  # --max-steps: the first command keeps training
  first = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
  try:
    lock = out / ".lock"
    for _ in range(600):
      if lock.is_file() and lock.read_text().strip():
        break
      time.sleep(0.1)
    second = subprocess.run(
      argv[:-2] + ["--out", str(out), "--lr", "0.2"], cwd=ROOT, capture_output=True, text=True
    )
    assert second.returncode == 2, second.stderr
    assert f"pid {first.pid}" in second.stderr and "is using" in second.stderr
    assert "Traceback" not in second.stderr
  finally:
    first.kill()
    first.wait()
  # A lock left by a dead process is taken over.
  assert sweep.main(SMALL_SWEEP + ["--out", str(out)]) == 0


# ------------------------------------------------------------- 7. stale temporaries
def test_stale_temporary_files_are_removed_on_the_next_run(tmp_path):
  argv = _swept(tmp_path)
  run = _finished_runs(tmp_path)[0]
  stale = [run / ".params.npz.abc123.tmp", tmp_path / ".checkpoints" / "f00" / ".x.tmp"]
  for path in stale:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"half")
  assert sweep.main(argv) == 0
  assert not any(p.exists() for p in stale)
  assert not (tmp_path / ".checkpoints" / "f00").exists()


# ---------------------------------------------------------------------- 8. smaller
def test_a_damaged_manifest_says_how_to_rebuild_it(tmp_path):
  argv = _swept(tmp_path)
  manifest = tmp_path / "manifest.json"
  manifest.write_text("{")
  _refused(sweep.main, argv, rf"{manifest} is damaged .*delete it: the next command rewrites it")


COMMANDS = ["train", "sweep", "reproduce", "compare", "gather_widths", "mean_field"]


def _help(module: str) -> subprocess.CompletedProcess:
  name = "benchmarks" if module == "benchmarks" else f"experiments.{module}"
  code = (
    "import sys, runpy; sys.argv = ['x', '--help']\n"
    f"try:\n  runpy.run_module('{name}', run_name='__main__')\n"
    "except SystemExit:\n  pass\n"
  )
  return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize("module", [*COMMANDS, "benchmarks"])
def test_every_flag_has_help(module):
  out = _help(module)
  assert out.returncode == 0, out.stderr
  lines = out.stdout.splitlines()
  flags = [i for i, line in enumerate(lines) if line.startswith("  -")]
  assert flags
  for i in flags:
    # argparse prints help on the flag's line or the next, indented deeper.
    following = lines[i + 1] if i + 1 < len(lines) else ""
    has_help = len(lines[i].strip().split("  ")) > 1 or following.startswith(" " * 8)
    assert has_help, f"{module}: {lines[i].strip()} has no help"
