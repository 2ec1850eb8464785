"""The comparison across widths, gathered from widths that ran as separate commands.

  python -m experiments.gather_widths OUT/n500 OUT/n1000 OTHER/n2000 --out OUT

A width can take longer than a machine or a session lasts, so widths may run
one per command (``experiments.compare --widths 2000 --out OTHER``), on
several machines. This writes the reports ``compare --widths`` writes across
them (``widths.md``, ``widths.csv``, ``widths.png`` in ``--out``) from each
width's ``compare.csv`` and ``chosen.json``, without training; ``widths.md``
names the folders it gathered. Given the same runs, the table is the one a
single ``compare --widths 500 1000 2000`` command prints: paired tests are
within a width.

The folders must agree on what the table compares: the same Δ, methods and
fine-tune steps, one width each, no width twice. Their preset and budget are
not written in these files: gathering widths of different presets is the
user's mistake to avoid.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from experiments.cli import command, refuse_damaged, usage_error
from experiments.out_dir import prepare_out_dir

# What widths.md and widths.png read of every row.
NEEDED = (
  "method", "strength", "seed", "width", "reached_target", "units_kept", "parameters_kept",
  "pruned_test_accuracy",
)  # fmt: skip


def parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument(
    "dirs",
    nargs="+",
    type=pathlib.Path,
    help="experiments.compare output folders, one width each (a --widths run's n<width>/)",
  )
  parser.add_argument("--out", required=True, help="where to write widths.md, .csv and .png")
  return parser


def read_width(folder: pathlib.Path) -> tuple[list[dict], dict]:
  """One width's rows (``compare.csv``) and choices (``chosen.json``), checked."""
  from experiments.files import read_csv  # JAX with it: --help answers without
  from htsgd_jax import records

  if not (folder / "compare.csv").is_file() or not (folder / "chosen.json").is_file():
    inner = sorted(p.parent.name for p in folder.glob("n*/compare.csv"))
    usage_error(
      f"{folder} holds no compare.csv and chosen.json of a finished experiments.compare."
      + (f" It holds widths {', '.join(inner)}: name those folders." if inner else "")
    )
  try:
    chosen = records.read_json(folder / "chosen.json", "rerun its experiments.compare command")
  except records.DamagedFileError as err:
    refuse_damaged(err)
  rows = read_csv(folder / "compare.csv")
  missing = [c for c in NEEDED if not rows or c not in rows[0]]
  if missing:
    usage_error(
      f"{folder}/compare.csv lacks {', '.join(missing)}; rerun its experiments.compare command."
    )
  if "delta" not in chosen:
    usage_error(f"{folder}/chosen.json lacks Δ; rerun its experiments.compare command.")
  if any(r[c] is None for r in rows for c in NEEDED if c != "strength"):
    usage_error(f"{folder}/compare.csv has empty cells where every run has a value.")
  widths = sorted({r["width"] for r in rows})
  if len(widths) != 1:
    usage_error(f"{folder}/compare.csv holds widths {widths}; a folder holds one width.")
  return rows, chosen


def gather(folders: list[pathlib.Path]) -> tuple[list[dict], float]:
  """Every width's rows, in order of width, and the Δ they share; refuses what disagrees."""
  by_width = {}
  for folder in folders:
    rows, chosen = read_width(folder)
    width = rows[0]["width"]
    if width in by_width:
      usage_error(f"width {width} is in {by_width[width][2]} and in {folder}; name it once.")
    by_width[width] = rows, chosen, folder
  (first_rows, first_chosen, first_folder), *rest = by_width.values()
  reference = _protocol(first_rows, first_chosen)
  for rows, chosen, folder in rest:
    for key, value in _protocol(rows, chosen).items():
      if value != reference[key]:
        usage_error(
          f"{first_folder} and {folder} differ in {key} ({reference[key]} against {value}):"
          " their widths do not compare. Rerun one with the other's flags."
        )
  rows = [r for width in sorted(by_width) for r in by_width[width][0]]
  return rows, first_chosen["delta"]


def _protocol(rows: list[dict], chosen: dict) -> dict:
  """What must agree between widths for their rows to share one table."""
  return dict(
    delta=chosen["delta"],
    methods=sorted({r["method"] for r in rows}),
    fine_tune_steps=sorted({r.get("fine_tune_steps") or 0 for r in rows}),
  )


def _shown(folder: pathlib.Path, out: pathlib.Path) -> str:
  """``folder`` relative to ``out`` if it is inside, else its absolute path."""
  folder, out = folder.resolve(), out.resolve()
  return str(folder.relative_to(out) if folder.is_relative_to(out) else folder)


@command
def main(argv=None) -> int:
  args = parser().parse_args(argv)
  folders = [pathlib.Path(d) for d in args.dirs]
  rows, delta = gather(folders)
  from experiments import compare_report  # matplotlib, once the folders are known to be good

  out = prepare_out_dir(args.out)
  names = ", ".join(f"`{_shown(f, out)}`" for f in folders)
  footer = f"\nGathered by experiments.gather_widths from {names}.\n"
  table = compare_report.write_widths(rows, delta, out, footer)
  print(f"{table}{footer}\nwritten to {out}/ (widths.md, widths.csv, widths.png)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
