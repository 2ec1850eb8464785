"""Command-line flags generated from config dataclasses: one source of truth."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any


def _flag_type(tp):
  if typing.get_origin(tp) in (typing.Union, types.UnionType):
    tp = next(a for a in typing.get_args(tp) if a is not type(None))
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
    tp = _flag_type(hints[f.name])
    if tp is bool:
      parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
    else:
      parser.add_argument(flag, type=tp, default=default, help=help_text)


def load_data_or_exit(cfg):
  """Loads ``cfg``'s dataset; a missing package, file or unknown name exits with the reason."""
  from htsgd_jax.train import load_data
  try:
    return load_data(cfg)
  except (ValueError, ModuleNotFoundError, FileNotFoundError) as err:
    raise SystemExit(f"error: {err}") from None


def config_from_args(cls, args: argparse.Namespace, **overrides):
  """Builds ``cls`` from parsed flags; a bad value exits with its ValueError message."""
  values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
  values.update(overrides)
  try:
    return cls(**values)
  except ValueError as err:
    raise SystemExit(f"error: {err}") from None
