"""Runnable experiments: `python -m experiments.<name> --help`.

Run without the project installed (a fresh clone and the system Python, say),
a command says how to set up instead of failing on its first import.
"""

import importlib.util as _util
import sys as _sys

_missing = [m for m in ("numpy", "jax", "flax", "optax") if _util.find_spec(m) is None]
if _missing:
  print(
    f"error: {', '.join(_missing)} not installed for {_sys.executable}. Run"
    " `bash .ci/setup.sh` (it creates .venv with everything), then use .venv/bin/python;"
    " or `pip install -e '.[experiments]'`.",
    file=_sys.stderr,
  )
  raise SystemExit(2)
