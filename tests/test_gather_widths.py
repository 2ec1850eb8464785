"""Gathering widths that ran as separate compare commands: what must agree, and what refuses."""

import json

import pytest

from experiments import gather_widths
from experiments.files import read_csv, write_csv


def _width_folder(path, width, delta=1.0, methods=("plain", "type2"), fine_tune_steps=0):
  """A compare output at one width: its compare.csv and chosen.json (two seeds per method)."""
  rows = [
    dict(
      method=method, strength=0.0 if method == "plain" else 0.01, seed=seed, status="converged",
      reached_target=True, units_kept=0.5 + 0.01 * seed, parameters_kept=0.4 + 0.01 * seed,
      pruned_test_accuracy=90.0 + seed, fine_tune_steps=fine_tune_steps, width=width,
    )
    for method in methods
    for seed in (1, 2)
  ]  # fmt: skip
  path.mkdir(parents=True)
  write_csv(path / "compare.csv", rows)
  (path / "chosen.json").write_text(json.dumps(dict(delta=delta, strengths={})))
  return path


def test_gathered_widths_are_in_order_of_width_and_name_their_folders(tmp_path):
  a, b = _width_folder(tmp_path / "n64", 64), _width_folder(tmp_path / "elsewhere" / "n16", 16)
  assert gather_widths.main([str(a), str(b), "--out", str(tmp_path)]) == 0
  rows = read_csv(tmp_path / "widths.csv")
  assert [r["width"] for r in rows] == [16] * 4 + [64] * 4
  table = (tmp_path / "widths.md").read_text()
  assert table.index("| 16 | plain |") < table.index("| 64 | plain |")
  assert "from `n64`, `elsewhere/n16`." in table
  assert (tmp_path / "widths.png").stat().st_size > 0


@pytest.mark.parametrize(
  "second, message",
  [
    (dict(width=16), "width 16 is in"),
    (dict(width=32, delta=2.0), "differ in delta (1.0 against 2.0)"),
    (dict(width=32, methods=("plain",)), "differ in methods"),
    (dict(width=32, fine_tune_steps=300), "differ in fine_tune_steps ([0] against [300])"),
  ],
)
def test_widths_that_do_not_compare_are_refused(tmp_path, capsys, second, message):
  first = _width_folder(tmp_path / "a", 16)
  other = _width_folder(tmp_path / "b", **second)
  with pytest.raises(SystemExit) as exit_info:
    gather_widths.main([str(first), str(other), "--out", str(tmp_path / "out")])
  assert exit_info.value.code == 2 and message in capsys.readouterr().err
  assert not (tmp_path / "out").exists()  # refused before writing anything


def test_a_folder_of_widths_is_refused_naming_its_widths(tmp_path, capsys):
  _width_folder(tmp_path / "n16", 16)
  _width_folder(tmp_path / "n32", 32)
  with pytest.raises(SystemExit):
    gather_widths.main([str(tmp_path), "--out", str(tmp_path / "out")])
  assert "It holds widths n16, n32: name those folders." in capsys.readouterr().err


def test_a_damaged_choice_file_is_refused_naming_it(tmp_path, capsys):
  folder = _width_folder(tmp_path / "n16", 16)
  (folder / "chosen.json").write_text('{"delta": 1.')
  with pytest.raises(SystemExit):
    gather_widths.main([str(folder), "--out", str(tmp_path / "out")])
  err = capsys.readouterr().err
  assert "chosen.json" in err and "damaged" in err and "rerun its experiments.compare" in err
