"""Experiment presets: one module per paper setting, each with a quick variant.

Every module defines ``get_config(variant)`` returning an :class:`Experiment`
(``variant`` is ``"full"``, the paper's setting, or ``"quick"``, minutes on a
2-core CPU with the same comparison; a module whose ``VARIANTS`` names
``"widths"`` also has the quick variant at several widths, for
``experiments.compare``'s comparison across widths). Its docstring holds the
exact command.

``--preset NAME`` runs ``NAME``'s full variant, ``NAME:quick`` its quick one,
``NAME:widths`` its widths one, and ``quick`` the README's main job (ECG5000
and MNIST, quick variants).
"""

from __future__ import annotations

import dataclasses
import importlib

from experiments.runs import RunSpec
from htsgd_jax.config import COMPUTE_DTYPES, CONV_MODELS, TrainConfig

NAMES = ("ecg5000_fcn", "mnist_fcn", "mnist_vgg", "cifar10_fcn", "cifar10_vgg", "cifar100_fcn")
GROUPS = {"quick": ("ecg5000_fcn:quick", "mnist_fcn:quick")}
# What Experiment.with_compute_dtype appends to an experiment's name.
COMPUTE_SUFFIXES = tuple(f"_{d}" for d in COMPUTE_DTYPES)
ARMS = ("plain", "noisy")
# Networks whose smallest version compare builds for real (compact_dense, compact_conv).
COMPARE_MODELS = ("fcn", *CONV_MODELS)


@dataclasses.dataclass(frozen=True)
class Experiment:
  """Noisy vs plain SGD on one setting, over seeds (and widths).

  Attributes:
    name: label used in tables, plots and run directories.
    noisy: the noisy run's config; the plain run is the same with no noise.
    seeds: seeds of both arms (paired: same init and data order).
    widths: widths to run (default: ``noisy.width`` only).
    prune_fraction: energy fraction of the pruning criterion.
    notes: where the hyperparameters come from.
    group_lasso_grid: group-lasso strengths λ that ``experiments.compare``
      tunes over.
    sigma_factors: σ is tuned over these factors × ``noisy.sigma`` (None:
      ``experiments.methods.SIGMA_FACTORS``); fewer where training is long.
    compare_steps: the step budget of every method in ``experiments.compare``
      (None: ``noisy.max_steps``); a method that never reaches the target
      accuracy would otherwise run to ``max_steps``.
    robust_eps: the radii ε (L∞, in the standardised inputs' units) at which
      ``experiments.compare`` attacks every network; chosen so that plain
      SGD's robust accuracy spans most of (0, 100) across them.
    run_table: ``table.md`` also lists every run (steps, wall time): for the
      few long runs of a paper-scale setting, where each run is a result.
  """

  name: str
  noisy: TrainConfig
  seeds: tuple[int, ...] = (1, 2, 3, 4, 5)
  widths: tuple[int, ...] = ()
  prune_fraction: float = 0.1
  notes: str = ""
  group_lasso_grid: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03, 0.1)
  sigma_factors: tuple[float, ...] | None = None
  compare_steps: int | None = None
  robust_eps: tuple[float, ...] = (0.05, 0.1, 0.2)
  run_table: bool = False

  def at_width(self, width: int) -> Experiment:
    """The same experiment at one other hidden width, named for it.

    Example:
      >>> get_experiments("ecg5000_fcn:quick")[0].at_width(500).name
      'ecg5000_fcn_quick_n500'
    """
    return dataclasses.replace(
      self,
      name=f"{self.name}_n{width}",
      noisy=dataclasses.replace(self.noisy, width=width),
      widths=(),
    )

  def with_compute_dtype(self, dtype: str | None) -> Experiment:
    """This experiment with another compute dtype than its preset's; its name says which.

    Example:
      >>> exp = get_experiments("mnist_fcn:quick")[0].with_compute_dtype("bfloat16")
      >>> exp.name, exp.noisy.compute_dtype
      ('mnist_fcn_quick_bfloat16', 'bfloat16')
      >>> get_experiments("mnist_fcn")[0].with_compute_dtype("float32").name
      'mnist_fcn_float32'
    """
    if dtype is None or dtype == self.noisy.compute_dtype:
      return self
    name = f"{self.name}_{dtype}"
    return dataclasses.replace(
      self, name=name, noisy=dataclasses.replace(self.noisy, compute_dtype=dtype)
    )

  def runs(self, arms: tuple[str, ...] = ARMS) -> list[RunSpec]:
    """Every arm's (of ``arms``) runs, at every width and seed, labelled by arm.

    Example:
      >>> [spec.name for spec in get_experiments("mnist_fcn")[0].runs(("noisy",))][:2]
      ['noisy_n5000_seed1', 'noisy_n5000_seed2']
    """
    plain = self.noisy.without_noise()
    out = []
    for width in self.widths or (self.noisy.width,):
      for arm, base in (("plain", plain), ("noisy", self.noisy)):
        if arm not in arms:
          continue
        for seed in self.seeds:
          cfg = dataclasses.replace(base, width=width, seed=seed)
          out.append(RunSpec(f"{arm}_n{width}_seed{seed}", arm, cfg))
    return out


def get_experiments(preset: str, command: str = "reproduce") -> list[Experiment]:
  """Resolves ``NAME``, ``NAME:quick`` or a group name into experiments.

  An unknown name is refused with the presets that ``command`` takes.
  """
  if preset in GROUPS:
    if command != "reproduce":
      raise ValueError(
        f"{preset!r} names several presets ({', '.join(GROUPS[preset])}); {command} takes one."
      )
    return [e for p in GROUPS[preset] for e in get_experiments(p, command)]
  name, _, variant = preset.partition(":")
  variant = variant or "full"
  if name not in NAMES or variant not in variants(name):
    raise ValueError(
      f"unknown preset {preset!r}; {command} takes {', '.join(choices(command))}"
      " (--list in experiments.reproduce says what each is)."
    )
  exp = importlib.import_module(f"experiments.presets.{name}").get_config(variant)
  if exp.widths and command == "sweep":
    raise ValueError(
      f"{preset!r} runs several widths; sweep takes one preset width and its own --widths"
      f" (e.g. --preset {name}:quick --widths {' '.join(map(str, exp.widths))})."
    )
  return [exp]


def variants(name: str) -> tuple[str, ...]:
  """The variants preset module ``name`` defines: full and quick, and widths in some.

  Example:
    >>> variants("mnist_fcn"), variants("cifar10_vgg")
    (('full', 'quick', 'widths'), ('full', 'quick'))
  """
  module = importlib.import_module(f"experiments.presets.{name}")
  return getattr(module, "VARIANTS", ("full", "quick"))


def commands_taking(preset: str) -> tuple[str, ...]:
  """The commands that take ``preset``: compare needs one FCN or VGG experiment.

  Example:
    >>> commands_taking("quick"), commands_taking("ecg5000_fcn:quick")
    (('reproduce',), ('reproduce', 'sweep', 'compare'))
  """
  if preset in GROUPS:
    return ("reproduce",)  # several experiments: sweep and compare take one
  (exp,) = get_experiments(preset)
  sweep = () if exp.widths else ("sweep",)  # sweep's widths are its own flag
  compare = ("compare",) if exp.noisy.model in COMPARE_MODELS else ()
  return ("reproduce", *sweep, *compare)


def choices(command: str = "reproduce") -> list[str]:
  """Every preset name (groups, NAME and its other variants) that ``command`` takes."""
  names = [*GROUPS, *(n if v == "full" else f"{n}:{v}" for n in NAMES for v in variants(n))]
  return [n for n in names if command in commands_taking(n)]


def listing() -> str:
  """One line per preset: its name, what it is, and the commands that take it."""
  lines = []
  for name in choices("reproduce"):
    if name in GROUPS:
      what = "the README's main job: " + " + ".join(GROUPS[name])
    else:
      (exp,) = get_experiments(name)
      c = exp.noisy
      widths = "/".join(map(str, exp.widths or [c.width]))
      width = {"vgg11_wide": "", "vgg11": f" width {widths}"}.get(c.model, f" n={widths}")
      what = f"{c.dataset} {c.model}{width}, {len(exp.seeds)} seeds"
    lines.append(f"{name:22s} {what:46s} {', '.join(commands_taking(name))}")
  return "\n".join(lines)
