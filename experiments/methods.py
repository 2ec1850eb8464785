"""What a comparison compares: the methods, their strengths, and Δ (the accuracy one may lose).

Shared by ``experiments.compare`` and ``experiments.sweep --tune``; reads
configs only, so that a command's ``--help`` never waits for JAX.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from htsgd_jax.config import TrainConfig

if TYPE_CHECKING:
  from experiments.presets import Experiment


@dataclasses.dataclass(frozen=True)
class Method:
  """A way to train that a comparison weighs: its noise, or none, and what its strength sets.

  Attributes:
    name: its name in commands and reports.
    strength: the config field its strength sets: ``"sigma"`` (a noise's scale),
      ``"group_lasso"`` (λ), or None (plain SGD: nothing to tune).
    noise_type: its noise type (None: the preset's).
    alpha: its noise's α (None: the preset's; 2 is Gaussian).

  Example:
    >>> cfg = BY_NAME["type2_alpha1.5"].config(TrainConfig(noise_type=1, alpha=1.75), 0.5)
    >>> cfg.noise_type, cfg.alpha, cfg.sigma
    (2, 1.5, 0.5)
    >>> BY_NAME["group_lasso"].config(TrainConfig(sigma=0.5), 0.01).noisy
    False
  """

  name: str
  strength: str | None
  noise_type: int | None = None
  alpha: float | None = None

  def config(self, base: TrainConfig, strength: float) -> TrainConfig:
    """``base`` trained with this method at ``strength``."""
    if self.strength != "sigma":  # no noise: plain SGD, or SGD with a group-lasso step
      lasso = dict(group_lasso=strength) if self.strength == "group_lasso" else {}
      return dataclasses.replace(base.without_noise(), **lasso)
    return dataclasses.replace(
      base,
      noise_type=self.noise_type or base.noise_type,
      alpha=self.alpha or base.alpha,
      sigma=strength,
    )


# In report order; other labels (sweep arms) follow them.
TABLE = (
  Method("plain", None),
  Method("gaussian", "sigma", alpha=2.0),
  Method("type1", "sigma", noise_type=1),
  Method("type2", "sigma", noise_type=2),
  Method("type3", "sigma", noise_type=3),
  Method("type2_alpha1.5", "sigma", noise_type=2, alpha=1.5),
  Method("group_lasso", "group_lasso"),
)
BY_NAME = {m.name: m for m in TABLE}
METHODS = tuple(BY_NAME)
BUDGETS = ("converge", "fixed")

VALIDATION = 0.2  # default share of the training set held out
SIGMA_FACTORS = (0.1, 0.3, 1.0, 3.0, 10.0)


def strength_label(method: str, strength: float) -> str:
  """``σ = 0.5``, ``λ = 0.1``, or ``—`` for plain SGD.

  Example:
    >>> strength_label("group_lasso", 0.1), strength_label("plain", 0.0)
    ('λ = 0.1', '—')
  """
  kind = BY_NAME[method].strength if method in BY_NAME else "sigma"  # a sweep's noisy arm
  if method == "plain" or kind is None:
    return "—"
  return f"{'λ' if kind == 'group_lasso' else 'σ'} = {strength:g}"


def strength_grid(exp: Experiment, method: str) -> tuple[float, ...]:
  """The strengths tuned over for ``method`` (plain SGD has none: ``(0.0,)``).

  Example:
    >>> from experiments.presets import get_experiments
    >>> strength_grid(get_experiments("ecg5000_fcn:quick")[0], "type2")
    (0.05, 0.15, 0.5, 1.5, 5.0)
  """
  kind = _method(method).strength
  if kind is None:
    return (0.0,)
  if kind == "group_lasso":
    return tuple(exp.group_lasso_grid)
  return tuple(float(f"{exp.noisy.sigma * f:.6g}") for f in exp.sigma_factors or SIGMA_FACTORS)


def method_config(
  exp: Experiment, method: str, strength: float, budget: str = "converge"
) -> TrainConfig:
  """The preset's config, trained with ``method`` at ``strength``, on the compare budget.

  ``budget="converge"``: each run stops at the preset's train-accuracy target,
  or at ``exp.compare_steps`` steps; ``"fixed"``: every run trains exactly
  ``exp.compare_steps`` steps (no target).

  Example:
    >>> from experiments.presets import get_experiments
    >>> exp = get_experiments("ecg5000_fcn:quick")[0]
    >>> cfg = method_config(exp, "gaussian", 0.5)
    >>> cfg.alpha, cfg.noise_type, cfg.sigma, cfg.target_accuracy, cfg.max_steps
    (2.0, 2, 0.5, 99.0, 1000)
    >>> cfg = method_config(exp, "type2_alpha1.5", 0.5, budget="fixed")
    >>> cfg.alpha, cfg.noise_type, cfg.target_accuracy, cfg.max_steps
    (1.5, 2, None, 1000)
  """
  steps = exp.compare_steps or exp.noisy.max_steps
  if budget == "converge":
    base = dataclasses.replace(exp.noisy, max_steps=steps)
  elif budget == "fixed":
    base = dataclasses.replace(exp.noisy, max_steps=steps, target_accuracy=None)
  else:
    raise ValueError(f"unknown budget {budget!r}; choose from {', '.join(BUDGETS)}.")
  return _method(method).config(base, strength)


def _method(name: str) -> Method:
  if name not in BY_NAME:
    raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}.")
  return BY_NAME[name]
