"""What every command line shares: flags generated from config dataclasses (one
source of truth), and refusals that come before any work starts.

A refusal prints ``error: <reason and what to do>`` on stderr and exits with
status 2, as argparse does for usage errors; no traceback. A failing disk
(full, over quota, permissions changed mid-run) ends a :func:`command` in one
``error:`` line naming the file, with status 1; everything written before it
stays (files are written atomically), so the same command resumes. The
output directory's lock (:mod:`experiments.out_dir`) goes when a command ends.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import sys
import types
import typing
from typing import Any, NoReturn

USAGE_ERROR = 2
SYSTEM_ERROR = 1


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


# A damaged run file's way out, from a command that trains: its --force.
RETRAIN_HINT = "delete it, or pass --force to retrain"


def refuse_damaged(err) -> NoReturn:
  """Refuses a :class:`htsgd_jax.records.DamagedFileError` in one line, naming the file.

  Where the library says to retrain the run, the command says how: ``--force``.
  """
  from htsgd_jax import records  # JAX; cli itself builds without it

  usage_error(err.message(RETRAIN_HINT) if err.hint == records.RETRAIN_HINT else str(err))


def command(main):
  """Wraps a command's ``main``: an ``OSError`` becomes one ``error:`` line, exit status 1.

  A closed pipe on stdout (``| head``) ends the command quietly.

  The output directories it locked are released when it returns, however it returns.
  """

  @functools.wraps(main)
  def wrapped(argv=None):
    from experiments import hosts

    try:
      return main(argv)
    except BrokenPipeError:  # the reader went away (`| head`): nothing is wrong with the disk
      os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit's flush
      raise SystemExit(0) from None
    except OSError as err:
      print(f"error: {os_error_message(err)}", file=sys.stderr)
      raise SystemExit(SYSTEM_ERROR) from None
    except Exception as err:
      if hosts.is_worker() and hosts.is_peer_failure(err):
        hosts.worker_exit(err)  # the supervisor says what happened, in one line
      raise
    finally:
      from experiments.out_dir import release_out_dirs

      release_out_dirs()

  return wrapped


def os_error_message(err: OSError) -> str:
  """What failed, on which file, and what to do.

  Example:
    >>> import errno
    >>> os_error_message(OSError(errno.ENOSPC, "No space left on device", "out/runs.csv"))
    ... # doctest: +ELLIPSIS
    'out/runs.csv: No space left on device. Free space ... rerun the same command...'
  """
  where = f"{err.filename}: " if err.filename else ""
  return (
    f"{where}{err.strerror or err}. Free space (or fix permissions), then rerun the same"
    " command: finished runs and the last checkpoint are kept, and it resumes from them."
  )


def _optional(tp):
  """Parses 'none' (any case) as None, anything else as ``tp``."""

  def parse(text: str):
    return None if text.strip().lower() == "none" else tp(text)

  parse.__name__ = tp.__name__  # argparse names the type in its messages
  return parse


def _flag_type(tp):
  """``(parse, nargs)`` of a field's type: ``X | None`` parses "none"; ``tuple[X, ...]`` is "+"."""
  if typing.get_origin(tp) in (typing.Union, types.UnionType):
    inner = next(a for a in typing.get_args(tp) if a is not type(None))
    if typing.get_origin(inner) is tuple:  # an optional list: absent means None
      return typing.get_args(inner)[0], "+"
    return _optional(inner), None
  if typing.get_origin(tp) is tuple:
    return typing.get_args(tp)[0], "+"
  return tp, None


def add_config_flags(
  parser: argparse.ArgumentParser,
  cls,
  defaults: dict[str, Any] | None = None,
  skip: tuple[str, ...] = (),
  helps: dict[str, str] | None = None,
) -> None:
  """Adds ``--field-name`` for every dataclass field, with the field's help text.

  A bool field gets ``--name``/``--no-name``; a ``tuple[X, ...]`` field takes
  one or more values; ``metadata["choices"]`` limits the values;
  ``metadata["default_help"]`` says what a default of None means; ``helps``
  replaces fields' help texts.
  """
  hints = typing.get_type_hints(cls)
  defaults = defaults or {}
  for f in dataclasses.fields(cls):
    if f.name in skip:
      continue
    default = defaults.get(f.name, f.default)
    flag = "--" + f.name.replace("_", "-")
    help_text = (helps or {}).get(f.name, f.metadata.get("help", ""))
    shown = " ".join(map(str, default)) if isinstance(default, tuple) else "%(default)s"
    help_text += f" (default: {f.metadata.get('default_help', shown)})"
    tp = hints[f.name]
    if tp is bool:
      parser.add_argument(
        flag, action=argparse.BooleanOptionalAction, default=default, help=help_text
      )
    else:
      parse, nargs = _flag_type(tp)
      parser.add_argument(
        flag,
        type=parse,
        nargs=nargs,
        default=default,
        choices=f.metadata.get("choices"),
        help=help_text,
      )


def require_experiment_extras() -> None:
  """Refuses to start when the [experiments] extra (plots, progress bars) is missing."""
  import importlib.util

  missing = [m for m in ("matplotlib", "tqdm") if importlib.util.find_spec(m) is None]
  if missing:
    usage_error(
      f"the experiment commands need {', '.join(missing)}: pip install 'htsgd-jax[experiments]'."
    )


def add_run_flags(parser: argparse.ArgumentParser, force_help: str) -> None:
  """Flags of every training command, from :class:`experiments.runs.RunOptions`."""
  from experiments.runs import RunOptions

  add_config_flags(parser, RunOptions, helps=dict(force=force_help))


def add_compute_dtype_flag(parser: argparse.ArgumentParser) -> None:
  """``--compute-dtype`` for a hand-written parser, as the settings' field makes it."""
  from experiments.settings import COMPUTE_DTYPE_HELP
  from htsgd_jax.config import COMPUTE_DTYPES

  parser.add_argument(
    "--compute-dtype",
    choices=COMPUTE_DTYPES,
    default=None,
    help=f"{COMPUTE_DTYPE_HELP} (default: the preset's, float32)",
  )


def run_options(args: argparse.Namespace):
  """The :class:`experiments.runs.RunOptions` that ``args`` gives; a bad one is refused."""
  from experiments.runs import RunOptions

  return config_from_args(RunOptions, args)


def load_data_or_exit(cfg):
  """Loads ``cfg``'s dataset; a missing package, file or unknown name is refused with the reason."""
  from htsgd_jax.training import load_data

  try:
    return load_data(cfg)
  except (ValueError, ModuleNotFoundError, FileNotFoundError) as err:
    usage_error(str(err))


def given_config_flags(make_parser, argv, cls) -> dict[str, Any]:
  """The ``cls`` fields whose flags ``argv`` gives explicitly, with their parsed values.

  ``make_parser()`` builds the command's parser (a fresh one: its defaults
  are switched off here). A preset's config then takes exactly these
  (``--preset … --lr X`` trains at X).

  Example:
    >>> from htsgd_jax.config import TrainConfig
    >>> def make():
    ...   p = argparse.ArgumentParser()
    ...   add_config_flags(p, TrainConfig)
    ...   return p
    >>> given_config_flags(make, ["--lr", "0.037", "--width", "10"], TrainConfig)
    {'width': 10, 'lr': 0.037}
  """
  fields = [f.name for f in dataclasses.fields(cls)]
  absent = object()  # not a string: argparse leaves it unconverted
  parser = make_parser()
  parser.set_defaults(**{name: absent for name in fields})
  given, _ = parser.parse_known_args(argv)
  return {name: getattr(given, name) for name in fields if getattr(given, name) is not absent}


def config_from_args(cls, args: argparse.Namespace, **overrides):
  """Builds ``cls`` from parsed flags; a bad value is refused with its ValueError message."""
  values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
  values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}  # nargs="+"
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
