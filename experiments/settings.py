"""Each command's settings, as data: its flags are generated from them.

:class:`ReproduceConfig`, :class:`SweepConfig` and :class:`CompareConfig`
(every training command adds :class:`experiments.runs.RunOptions`, and the
multi-process flags of :func:`experiments.hosts.add_distributed_flags`). A value
that cannot be right is refused when the settings are made, before anything
loads or trains. Imports neither JAX nor Flax, so that ``--help`` and a
refused flag answer at once.
"""

from __future__ import annotations

import dataclasses
import math

from experiments import methods as methods_lib
from experiments.presets import ARMS
from htsgd_jax.config import COMPUTE_DTYPES


def _field(default, help: str, **metadata):
  return dataclasses.field(default=default, metadata=dict(help=help, **metadata))


COMPUTE_DTYPE_HELP = (
  "dtype of the networks' matrix products (bfloat16: float32 accumulation, parameters and"
  " noise stay float32; runs are told apart by it)"
)


def _compute_dtype_field():
  return _field(
    None, COMPUTE_DTYPE_HELP, choices=COMPUTE_DTYPES, default_help="the preset's, float32"
  )


def _check_unique(flag: str, values, what: str = "a seed") -> None:
  if values and len(set(values)) != len(values):
    raise ValueError(f"{flag} repeats {what}: {list(values)}.")


def _check_delta(delta: float) -> None:
  if not 0 < delta < 100:
    raise ValueError(f"--delta is in accuracy points, in (0, 100); got {delta}.")


@dataclasses.dataclass(frozen=True)
class ReproduceConfig:
  """What ``experiments.reproduce`` trains and reports; each field is a flag.

  Example:
    >>> ReproduceConfig(arms=("noisy", "noisy"))
    Traceback (most recent call last):
    ...
    ValueError: --arms repeats an arm: ['noisy', 'noisy'].
  """

  preset: str = _field("quick", "preset name (see --list)")
  list: bool = _field(False, "list presets and exit")
  out: str | None = _field(None, "output directory", default_help="results/<preset>")
  seeds: tuple[int, ...] | None = _field(None, "train these seeds", default_help="the preset's")
  arms: tuple[str, ...] = _field(
    ARMS, "train these arms; with --seeds, one job can train one run", choices=ARMS
  )
  data_dir: str | None = _field(None, "TFDS data directory (CIFAR presets)")
  download: bool = _field(False, "let TFDS download (needs a network)")
  compute_dtype: str | None = _compute_dtype_field()

  def __post_init__(self):
    _check_unique("--seeds", self.seeds)
    _check_unique("--arms", self.arms, "an arm")


@dataclasses.dataclass(frozen=True)
class SweepConfig:
  """The grid ``experiments.sweep`` trains (beside the config flags of its base run).

  Example:
    >>> SweepConfig(tune="sigma", delta=100.0)
    Traceback (most recent call last):
    ...
    ValueError: --delta is in accuracy points, in (0, 100); got 100.0.
  """

  preset: str | None = _field(
    None,
    "start from a preset's noisy config (grid flags and config flags given here override it)",
  )
  widths: tuple[int, ...] | None = _field(None, "hidden widths", default_help="--width")
  seeds: tuple[int, ...] | None = _field(None, "seeds of every arm", default_help="1 2 3 4 5")
  alphas: tuple[float, ...] | None = _field(None, "tail indices α", default_help="--alpha")
  sigmas: tuple[float, ...] | None = _field(
    None, "noise scales; 0 adds the plain-SGD arm", default_help="0 and --sigma"
  )
  noise_types: tuple[int, ...] | None = _field(
    None, "noise types 1, 2, 3 of the noisy arms", default_help="--noise-type"
  )
  prune_fraction: float = _field(0.1, "energy fraction of the pruning rule")
  out: str | None = _field(None, "sweep directory", default_help="results/sweep_<dataset>")
  tune: str | None = _field(
    None,
    "choose σ on a validation split instead of reporting compressibility (see above)",
    choices=("sigma",),
  )
  delta: float = _field(1.0, "--tune: accuracy points a smaller network may lose against plain SGD")

  def __post_init__(self):
    _check_unique("--seeds", self.seeds)
    if self.tune:
      _check_delta(self.delta)


@dataclasses.dataclass(frozen=True)
class CompareConfig:
  """What ``experiments.compare`` compares, and how; each field is a flag (``--tuning-seeds``).

  A value that cannot be right is refused when the config is made, before
  anything loads or trains.

  Example:
    >>> CompareConfig(delta=0.0)
    Traceback (most recent call last):
    ...
    ValueError: --delta is in accuracy points, in (0, 100); got 0.0.
    >>> CompareConfig(methods=("type1",)).all_methods
    ('plain', 'type1')
  """

  preset: str = _field("ecg5000_fcn:quick", "a preset of experiments.reproduce (an FCN or VGG one)")
  out: str | None = _field(None, "output directory", default_help="results/compare_<preset>")
  seeds: tuple[int, ...] | None = _field(None, "evaluation seeds", default_help="the preset's")
  tuning_seeds: tuple[int, ...] = _field((101, 102), "seeds of the tuning runs")
  methods: tuple[str, ...] = _field(
    methods_lib.METHODS, "methods to compare (plain SGD always runs)", choices=methods_lib.METHODS
  )
  delta: float = _field(1.0, "accuracy points a smaller network may lose against plain SGD")
  validation: float = _field(
    methods_lib.VALIDATION, "fraction of the training set held out for tuning"
  )
  timing_repeats: int = _field(20, "timed calls per latency figure (batch 1: 5x)")
  eps: tuple[float, ...] | None = _field(
    None,
    "radii ε of the robustness report (L∞, standardised inputs)",
    default_help="the preset's",
  )
  robust_examples: int = _field(2000, "test examples attacked per network, a fixed random subset")
  widths: tuple[int, ...] | None = _field(
    None,
    "compare at each of these hidden widths (OUT/n<width>/ each, then widths.md and"
    " widths.png across them)",
    default_help="the preset's widths: NAME:widths has several",
  )
  budget: str = _field(
    "converge",
    "converge: each run stops at the preset's train-accuracy target, or at its step cap;"
    " fixed: every run trains the whole step cap",
    choices=methods_lib.BUDGETS,
  )
  fine_tune_steps: int = _field(
    0,
    "fine-tune every smallest network for this many steps of plain SGD (the preset's lr and"
    " batch size, the same minibatches for every method, removed units held at zero) and report"
    " its test accuracy beside the pruned one; 0: no fine-tuning",
  )
  compute_dtype: str | None = _compute_dtype_field()

  def __post_init__(self):
    _check_unique("--seeds", self.seeds)
    _check_unique("--tuning-seeds", self.tuning_seeds)
    if self.seeds is not None and len(self.seeds) < 2:
      raise ValueError("a paired test needs at least 2 seeds; the issue's standard is 5.")
    _check_delta(self.delta)
    if not 0 < self.validation < 1:
      raise ValueError(f"--validation is a fraction in (0, 1); got {self.validation}.")
    if self.eps is not None and not all(0 < e < math.inf for e in self.eps):
      raise ValueError(f"--eps are radii, finite and > 0; got {list(self.eps)}.")
    if self.robust_examples < 1:
      raise ValueError(f"--robust-examples must be >= 1; got {self.robust_examples}.")
    if self.fine_tune_steps < 0:
      raise ValueError(f"--fine-tune-steps must be >= 0; got {self.fine_tune_steps}.")
    widths = self.widths or ()
    if any(w < 1 for w in widths) or len(set(widths)) < len(widths):
      raise ValueError(f"--widths must be distinct and >= 1; got {list(widths)}.")

  @property
  def all_methods(self) -> tuple[str, ...]:
    """Plain SGD, then the other methods asked for."""
    return ("plain", *(m for m in self.methods if m != "plain"))
