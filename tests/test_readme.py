"""The README's and the guides' Python examples run as written."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def test_readme_python_blocks_run(capsys):
  blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
  assert blocks, "the README should show the optax example"
  for block in blocks:
    exec(compile(block, str(README), "exec"), {})
  assert "True" in capsys.readouterr().out


def test_guides_python_blocks_run():
  for page in sorted((ROOT / "docs").glob("*.md")):
    for block in re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S):
      exec(compile(block, str(page), "exec"), {})


def test_readme_links_to_guides_that_exist():
  links = re.findall(r"\]\((docs/[^)#]+)", README.read_text())
  assert len(links) >= 8
  for link in links:
    assert (ROOT / link).is_file(), link
