"""Sphinx configuration: the README as the overview, the guides (docs/*.md), the API
reference from the docstrings, and the notebooks executed at build time (MyST-NB).

  python -m sphinx -W -b html docs build/docs     # warnings are errors; offline
"""

import pathlib
import shutil
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

project = "htsgd-jax"
author = "htsgd-jax developers"
copyright = "2026, htsgd-jax developers"

extensions = [
  "myst_nb",
  "sphinx.ext.autodoc",
  "sphinx.ext.napoleon",
  "sphinx.ext.viewcode",
]
html_theme = "furo"
html_title = "htsgd-jax"
html_static_path = ["_static"]
html_css_files = ["custom.css"]  # wide result tables scroll instead of being cut off
exclude_patterns = ["_build"]
myst_heading_anchors = 3
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the docstrings' Args sections say what each argument is
napoleon_google_docstring = True
napoleon_use_ivar = True  # "Attributes:" as fields: NamedTuple fields are not described twice

# Notebooks: executed at every build, so that their figures show; an error fails the build.
nb_execution_mode = "force"
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_merge_streams = True

# The notebooks live in notebooks/ (where the tests run them); copy them into the source tree.
NOTEBOOKS = pathlib.Path(__file__).resolve().parent / "notebooks"
NOTEBOOKS.mkdir(exist_ok=True)
for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
  shutil.copyfile(notebook, NOTEBOOKS / notebook.name)
