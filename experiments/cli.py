"""What every command line shares: flags generated from config dataclasses (one
source of truth), and refusals that come before any work starts.

A refusal prints ``error: <reason and what to do>`` on stderr and exits with
status 2, as argparse does for usage errors; no traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys
import types
import typing
from typing import Any, NoReturn

USAGE_ERROR = 2


class UsageError(SystemExit):
  """A refused command: exit status 2, ``str()`` is the printed message."""

  def __init__(self, message: str):
    super().__init__(USAGE_ERROR)
    self.message = message

  def __str__(self) -> str:
    return f"error: {self.message}"


def usage_error(message: str) -> NoReturn:
  """Prints ``error: message`` on stderr and exits with status 2."""
  print(f"error: {message}", file=sys.stderr)
  raise UsageError(message)


def _optional(tp):
  """Parses 'none' (any case) as None, anything else as ``tp``."""
  def parse(text: str):
    return None if text.strip().lower() == "none" else tp(text)
  parse.__name__ = tp.__name__  # argparse names the type in its messages
  return parse


def _flag_type(tp):
  if typing.get_origin(tp) in (typing.Union, types.UnionType):
    inner = next(a for a in typing.get_args(tp) if a is not type(None))
    return _optional(inner)
  return tp


def add_config_flags(parser: argparse.ArgumentParser, cls, defaults: dict[str, Any] | None = None,
                     skip: tuple[str, ...] = ()) -> None:
  """Adds ``--field-name`` for every dataclass field, with the field's help text."""
  hints = typing.get_type_hints(cls)
  defaults = defaults or {}
  for f in dataclasses.fields(cls):
    if f.name in skip:
      continue
    default = defaults.get(f.name, f.default)
    flag = "--" + f.name.replace("_", "-")
    help_text = f.metadata.get("help", "") + " (default: %(default)s)"
    tp = hints[f.name]
    if tp is bool:
      parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
    else:
      parser.add_argument(flag, type=_flag_type(tp), default=default, help=help_text)


def add_run_flags(parser: argparse.ArgumentParser, force_help: str) -> None:
  """Flags of every training command: --force, --checkpoint-every-s, --no-progress."""
  parser.add_argument("--force", action="store_true", help=force_help)
  parser.add_argument("--checkpoint-every-s", type=float, default=300.0,
                      help="seconds between checkpoints of the training state (also written on"
                           " SIGINT/SIGTERM; rerunning the command resumes) (default: %(default)s)")
  parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def check_run_flags(args: argparse.Namespace) -> None:
  if not args.checkpoint_every_s >= 0:
    usage_error(f"--checkpoint-every-s must be >= 0; got {args.checkpoint_every_s}.")


def load_data_or_exit(cfg):
  """Loads ``cfg``'s dataset; a missing package, file or unknown name is refused with the reason."""
  from htsgd_jax.train import load_data
  try:
    return load_data(cfg)
  except (ValueError, ModuleNotFoundError, FileNotFoundError) as err:
    usage_error(str(err))


def config_from_args(cls, args: argparse.Namespace, **overrides):
  """Builds ``cls`` from parsed flags; a bad value is refused with its ValueError message."""
  values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
  values.update(overrides)
  try:
    return cls(**values)
  except ValueError as err:
    usage_error(str(err))


def check_or_exit(check, *args, **kwargs) -> None:
  """Runs a ``check_*`` function; its ValueError becomes a refusal."""
  try:
    check(*args, **kwargs)
  except ValueError as err:
    usage_error(str(err))


def prepare_out_dir(path) -> pathlib.Path:
  """Creates ``path`` and proves it writable now, not after hours of training.

  Example:
    >>> import tempfile
    >>> prepare_out_dir(tempfile.mkdtemp() + "/a/b").is_dir()
    True
  """
  path = pathlib.Path(path)
  probe = path / ".write-test"
  try:
    path.mkdir(parents=True, exist_ok=True)
    probe.write_bytes(b"")
    probe.unlink()
  except OSError as err:
    usage_error(f"cannot write to {path} ({err.strerror or err}); choose another --out.")
  return path
