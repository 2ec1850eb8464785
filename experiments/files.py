"""Report files (CSV tables, text, figures), written through :func:`htsgd_jax.records.atomic_write`
(a failed write, disk full or quota, leaves the previous file) and read back typed.

Cells and values without meaning (None, NaN, inf) are written empty, never as ``nan``.
"""

from __future__ import annotations

import csv
import io
import pathlib
from collections.abc import Sequence

import numpy as np

from htsgd_jax import records


def csv_cell(value):
  """A CSV cell: a value without meaning (None, NaN, inf) is an empty cell.

  Example:
    >>> csv_cell(float("nan")), csv_cell(None), csv_cell(0.5), csv_cell("converged")
    ('', '', 0.5, 'converged')
  """
  if value is None or (isinstance(value, (float, np.floating)) and not np.isfinite(value)):
    return ""
  return value


def write_csv(path: pathlib.Path, rows: list[dict], fields: Sequence[str] | None = None) -> None:
  """Writes ``rows`` as CSV atomically; cells without a value (None, NaN, inf) are empty."""
  text = io.StringIO()
  writer = csv.DictWriter(text, fieldnames=list(fields or rows[0]), extrasaction="ignore")
  writer.writeheader()
  writer.writerows({k: csv_cell(v) for k, v in r.items()} for r in rows)
  write_text(path, text.getvalue())


def read_csv(path: pathlib.Path) -> list[dict]:
  """Reads a CSV that :func:`write_csv` wrote, with its cells' types back.

  Empty cells are None; ``True``/``False`` are booleans; numbers are ints or
  floats; anything else stays a string.

  Example:
    >>> import tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.csv"
    >>> write_csv(path, [dict(method="type2", seed=1, kept=0.25, ok=True, p=float("nan"))])
    >>> read_csv(path)
    [{'method': 'type2', 'seed': 1, 'kept': 0.25, 'ok': True, 'p': None}]
  """
  with open(path, newline="") as f:
    return [{k: _typed_cell(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _typed_cell(text: str):
  if text == "":
    return None
  if text in ("True", "False"):
    return text == "True"
  for parse in (int, float):
    try:
      return parse(text)
    except ValueError:
      pass
  return text


def write_text(path: pathlib.Path, text: str) -> None:
  """Writes a report atomically: a failed write leaves the previous file, and names this one."""
  records.atomic_write(path, lambda f: f.write(text.encode()))


def save_figure(fig, path: pathlib.Path) -> pathlib.Path:
  """Saves a matplotlib figure as PNG atomically (see :func:`write_text`), then closes it."""
  import matplotlib.pyplot as plt

  try:
    records.atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120))
  finally:
    plt.close(fig)
  return path
