"""What a comparison compares: the methods, their strengths, and Δ (the accuracy one may lose).

Shared by ``experiments.compare`` and ``experiments.sweep --tune``; reads
configs only, so that a command's ``--help`` never waits for JAX.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from experiments.cli import usage_error
from htsgd_jax.config import TrainConfig

if TYPE_CHECKING:
  from experiments.presets import Experiment

# Methods in report order; other labels (sweep arms) follow them. A noise type at another
# α than the preset's is named typeN_alphaA.
METHODS = ("plain", "gaussian", "type1", "type2", "type3", "type2_alpha1.5", "group_lasso")
BUDGETS = ("converge", "fixed")

VALIDATION = 0.2  # default share of the training set held out
SIGMA_FACTORS = (0.1, 0.3, 1.0, 3.0, 10.0)


def add_delta_flag(parser, prefix: str = "") -> None:
  """``--delta``: the accuracy points a smaller network may lose against plain SGD."""
  parser.add_argument(
    "--delta",
    type=float,
    default=1.0,
    help=f"{prefix}accuracy points a smaller network may lose against plain SGD"
    " (default: %(default)s)",
  )


def check_delta(delta: float) -> None:
  """Refuses a ``--delta`` outside (0, 100) accuracy points.

  Example:
    >>> check_delta(0.0)
    Traceback (most recent call last):
    ...
    experiments.cli.UsageError: error: --delta is in accuracy points, in (0, 100); got 0.0.
  """
  if not 0 < delta < 100:
    usage_error(f"--delta is in accuracy points, in (0, 100); got {delta}.")


def strength_label(method: str, strength: float) -> str:
  """``σ = 0.5``, ``λ = 0.1``, or ``—`` for plain SGD.

  Example:
    >>> strength_label("group_lasso", 0.1), strength_label("plain", 0.0)
    ('λ = 0.1', '—')
  """
  if method == "plain":
    return "—"
  return f"{'λ' if method == 'group_lasso' else 'σ'} = {strength:g}"


def strength_grid(exp: Experiment, method: str) -> tuple[float, ...]:
  """The strengths tuned over for ``method`` (plain SGD has none: ``(0.0,)``).

  Example:
    >>> from experiments.presets import get_experiments
    >>> strength_grid(get_experiments("ecg5000_fcn:quick")[0], "type2")
    (0.05, 0.15, 0.5, 1.5, 5.0)
  """
  if method == "plain":
    return (0.0,)
  if method == "group_lasso":
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
  if method == "plain":
    return dataclasses.replace(base, noise_type=0, sigma=0.0)
  if method == "group_lasso":
    return dataclasses.replace(base, noise_type=0, sigma=0.0, group_lasso=strength)
  if method == "gaussian":
    return dataclasses.replace(base, alpha=2.0, sigma=strength)
  noise, _, alpha = method.partition("_alpha")
  if method in METHODS and noise in ("type1", "type2", "type3"):
    return dataclasses.replace(
      base, noise_type=int(noise[-1]), sigma=strength, alpha=float(alpha or base.alpha)
    )
  raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}.")
