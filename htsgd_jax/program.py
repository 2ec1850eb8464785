"""The compiled training program: pure functions of (state, hyperparameters, data).

Everything ``jit`` sees lives here: the per-run state (:class:`RunState`),
the traced per-run hyperparameters (:class:`Hyper`), the optimiser
(:func:`optimizer_parts`), evaluation (:func:`evaluate`) and the program
itself (:func:`build_program`): ``lax.scan`` over ``eval_every`` SGD steps of
a ``vmap``-ped batch of runs, then a full evaluation and each run's stop
rule, with the run axis sharded over a device mesh. No I/O, no host state:
the loop that drives it is :mod:`htsgd_jax.driver`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from htsgd_jax import models as models_lib
from htsgd_jax import noise as noise_lib
from htsgd_jax import proximal
from htsgd_jax.config import TrainConfig
from htsgd_jax.distributed import RUN_AXIS


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


class Metrics(NamedTuple):
  """A run's evaluation on the whole training and held-out sets (one value per run when
  batched); accuracies in percent. The held-out set is the test set, or a validation split."""

  train_loss: jax.Array
  train_accuracy: jax.Array
  test_loss: jax.Array
  test_accuracy: jax.Array


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

  def one(batch):
    xs, ys, ok = batch
    logits = apply_fn(params, xs)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, ys)
    correct = jnp.argmax(logits, -1) == ys
    return jnp.sum(jnp.where(ok, losses, 0.0)), jnp.sum(ok & correct)

  loss_sums, correct = jax.lax.map(one, padded_batches(x, y, batch_size))
  return loss_sums.sum() / n, 100.0 * correct.sum() / n


def padded_batches(x, y, batch_size: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """``(xb, yb, valid)``: the examples in equal batches, the last padded; ``valid`` marks the real.

  For ``lax.map`` over a whole dataset: one compiled batch shape, whatever ``len(x)``.

  Example:
    >>> import jax.numpy as jnp
    >>> xb, yb, valid = padded_batches(jnp.ones((5, 2)), jnp.arange(5), 2)
    >>> xb.shape, valid.sum(1).tolist()
    ((3, 2, 2), [2, 2, 1])
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
  return xb, yb, valid


def epoch_batches_t(x_flat, perm, batch_size: int, steps_per_epoch: int) -> jax.Array:
  """An epoch's minibatches in order, each transposed: ``(steps_per_epoch, features, batch)``.

  Step ``pos`` of the epoch reads ``[pos]``: the columns of the examples
  ``perm[pos * batch_size:(pos + 1) * batch_size]``, contiguous, the fast
  layout of a bfloat16 weight gradient on CPUs
  (:func:`htsgd_jax.models.transposed_input_product`). Laid out once an
  epoch (and at each compiled chunk's start): a row gather and a transpose,
  where gathering each step's columns costs more than the product saves.

  Example:
    >>> x = jnp.arange(12).reshape(6, 2)
    >>> epoch_batches_t(x, jnp.array([5, 0, 1, 2, 3, 4]), 2, 3)[0].tolist()
    [[10, 0], [11, 1]]
  """
  rows = jnp.take(x_flat, perm[: steps_per_epoch * batch_size], axis=0)
  return jnp.swapaxes(rows.reshape(steps_per_epoch, batch_size, -1), 1, 2)


def over_runs(fn: Callable, in_axes: tuple, one_at_a_time: bool) -> Callable:
  """``jax.vmap(fn, in_axes)``, or, with ``one_at_a_time``, the same as a loop over runs.

  ``in_axes`` holds 0 (batched over runs) or None (shared). The loop
  (``lax.map``) exists for convolutions on CPUs: XLA:CPU runs a convolution
  batched over runs (a grouped convolution) about 2x slower per run than
  one run's.

  Example:
    >>> f = lambda a, b: a * b
    >>> over_runs(f, (0, None), True)(jnp.arange(3.0), 2.0).tolist()
    [0.0, 2.0, 4.0]
  """
  if not one_at_a_time:
    return jax.vmap(fn, in_axes=in_axes)

  def looped(*args):
    batched = [a for a, axis in zip(args, in_axes) if axis == 0]

    def one(run_args):
      it = iter(run_args)
      return fn(*[next(it) if axis == 0 else a for a, axis in zip(args, in_axes)])

    return jax.lax.map(one, batched)

  return looped


def runs_in_a_loop(params) -> bool:
  """Whether runs of ``params`` (one run's or stacked) go one at a time: convolutions on a CPU.

  See :func:`over_runs`; the analysis of trained networks asks the same as the training program.

  Example:
    >>> import numpy as np
    >>> runs_in_a_loop({"dense": {"kernel": np.zeros((3, 8, 4))}})
    False
  """
  has_conv_kernel = any(jnp.ndim(leaf) >= 4 for leaf in jax.tree.leaves(params))
  return has_conv_kernel and jax.default_backend() == "cpu"


def stack(params_list: Sequence[Any]) -> Any:
  """Stacks per-run parameter pytrees along a new leading axis.

  Example:
    >>> stack([{"w": jnp.zeros(2)}, {"w": jnp.ones(2)}])["w"].shape
    (2, 2)
  """
  return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *params_list)


def tree_where(cond, new, old):
  """Leafwise ``where``; ``cond``'s axes are the leaves' leading axes (scalar or per run)."""

  def pick(a, b):
    return jnp.where(cond.reshape(cond.shape + (1,) * (a.ndim - cond.ndim)), a, b)

  return jax.tree.map(pick, new, old)


def all_finite(tree) -> jax.Array:
  return jnp.all(
    jnp.stack(
      [
        jnp.all(jnp.isfinite(x))
        for x in jax.tree.leaves(tree)
        if jnp.issubdtype(x.dtype, jnp.floating)
      ]
    )
  )


class Program(NamedTuple):
  """The compiled functions of one training program, and where their arrays live.

  * ``init(seeds, hyper) -> states``: every run's initial state;
  * ``first_eval(states, data) -> (states, metrics)``: the step-0 evaluation
    and stop rule;
  * ``chunk(states, hyper, t0, data) -> (states, metrics, minibatch_loss)``:
    ``eval_every`` steps from step ``t0``, then evaluation and the stop rule;
  * ``steps(states, hyper, t0, data) -> states``: the same steps without
    evaluation (what a step costs in training, for the benchmarks).

  ``data`` is ``(x_train, y_train, x_test, y_test)``; ``metrics`` is a
  :class:`Metrics` with one value per run in each field.
  """

  init: Callable
  chunk: Callable
  first_eval: Callable
  steps: Callable
  run_sharding: NamedSharding
  replicated: NamedSharding


def build_program(
  cfg: TrainConfig,
  model: nn.Module,
  input_shape: tuple[int, ...],
  n_train: int,
  mesh: jax.sharding.Mesh,
  noisy: bool,
  lasso: bool,
) -> Program:
  """The training program of runs that share ``cfg``'s static settings (see :class:`Program`).

  ``noisy`` and ``lasso`` say whether any run has noise or a group-lasso
  step (static: runs without them get σ = 0 or λ = 0 inside).
  """
  steps_per_epoch = n_train // cfg.batch_size

  def apply(params, x):
    return model.apply({"params": params}, x)

  transposed = models_lib.takes_transposed_input(model)

  def epoch_batches(x_flat, perm):
    return epoch_batches_t(x_flat, perm, cfg.batch_size, steps_per_epoch)

  def parts(hyper: Hyper, key=0):
    strength = hyper.group_lasso if lasso else None
    return optimizer_parts(cfg, hyper.alpha, hyper.sigma, noisy, key, strength)

  sample_x = jnp.zeros((1,) + input_shape, jnp.float32)

  def init_one(seed, hyper: Hyper) -> RunState:
    init_key, data_key, noise_key = jax.random.split(jax.random.key(seed), 3)
    params = model.init(init_key, sample_x)["params"]
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

  def step_one(state: RunState, hyper: Hyper, t, x, y, x_flat, batches_t):
    """One SGD step: ``(state, minibatch loss, un-noised iterate, batches_t)``.

    The un-noised iterate is dead code unless before_noise. For a model
    that takes its batch transposed, ``x_flat`` is the training inputs
    flattened in the compute dtype and ``batches_t`` the epoch's batches
    transposed (:func:`epoch_batches_t`), laid out anew when an epoch
    starts; else both are None.
    """
    base_tx, noise_tx = parts(hyper)
    # t is shared by all runs, so this cond stays a cond under vmap.
    epoch, pos = t // steps_per_epoch, t % steps_per_epoch
    perm = jax.lax.cond(
      (pos == 0) & (t > 0),
      lambda: jax.random.permutation(jax.random.fold_in(state.data_key, epoch), n_train),
      lambda: state.perm,
    )
    idx = jax.lax.dynamic_slice(perm, (pos * cfg.batch_size,), (cfg.batch_size,))
    if transposed:
      batches_t = jax.lax.cond(
        (pos == 0) & (t > 0), lambda: epoch_batches(x_flat, perm), lambda: batches_t
      )

    def loss_fn(p):
      if transposed:
        logits = model.apply({"params": p}, x[idx], batches_t[pos])
      else:
        logits = apply(p, x[idx])
      return optax.softmax_cross_entropy_with_integer_labels(logits, y[idx]).mean()

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    base_state, noise_state = state.opt_state
    updates, base_state = base_tx.update(grads, base_state, state.params)
    clean = optax.apply_updates(state.params, updates)
    updates, noise_state = noise_tx.update(updates, noise_state, state.params)
    params = optax.apply_updates(state.params, updates)
    go = state.active & (t < cfg.max_steps)
    new = state._replace(
      params=tree_where(go, params, state.params),
      opt_state=tree_where(go, (base_state, noise_state), state.opt_state),
      perm=perm,
      steps=state.steps + go.astype(jnp.int32),
    )
    return new, jnp.where(go, loss, jnp.nan), tree_where(go, clean, state.params), batches_t

  def eval_one(state: RunState, data):
    x_tr, y_tr, x_te, y_te = data
    tr = evaluate(apply, state.params, x_tr, y_tr, cfg.eval_batch_size)
    te = evaluate(apply, state.params, x_te, y_te, cfg.eval_batch_size)
    return Metrics(*tr, *te)

  def stop_rule(state: RunState, metrics: Metrics) -> RunState:
    diverged = state.active & ~(jnp.isfinite(metrics.train_loss) & all_finite(state.params))
    converged = (
      metrics.train_accuracy >= cfg.target_accuracy
      if cfg.target_accuracy is not None
      else jnp.array(False)
    )
    active = state.active & ~diverged & ~converged & (state.steps < cfg.max_steps)
    return state._replace(active=active, diverged=state.diverged | diverged)

  before_noise = cfg.converge_on == "before_noise"
  # Convolutions on CPUs run one run at a time (see over_runs).
  one_at_a_time = models_lib.has_convolutions(model) and jax.default_backend() == "cpu"

  def step_or_skip(state: RunState, hyper: Hyper, t, x, y, x_flat, batches_t):
    """``step_one``, skipped by a run that has stopped: a real branch when runs go one at a
    time, so a stopped run costs nothing while the others train on."""

    def skipped(state, *_):
      return state, jnp.array(jnp.nan, jnp.float32), state.params, batches_t

    go = state.active & (t < cfg.max_steps)
    return jax.lax.cond(go, step_one, skipped, state, hyper, t, x, y, x_flat, batches_t)

  step_runs = over_runs(
    step_or_skip if one_at_a_time else step_one, (0, 0, None, None, None, None, 0), one_at_a_time
  )
  eval_runs = over_runs(eval_one, (0, None), one_at_a_time)

  def train_steps(states: RunState, hyper: Hyper, t0, data):
    """``eval_every`` SGD steps from ``t0``: ``(states, judged_params, minibatch_losses)``.

    ``judged_params`` is what the stop rule judges: with ``before_noise``,
    each run's last step without its noise; else the iterate itself.
    """
    x_tr, y_tr = data[0], data[1]
    x_flat, batches_t = None, None
    if transposed:
      x_flat = x_tr.reshape(x_tr.shape[0], -1).astype(cfg.compute_dtype)
      batches_t = jax.vmap(epoch_batches, in_axes=(None, 0))(x_flat, states.perm)
    ts = t0 + jnp.arange(cfg.eval_every)
    if not before_noise:

      def body(carry, t):
        s, b = carry
        s, loss, _, b = step_runs(s, hyper, t, x_tr, y_tr, x_flat, b)
        return (s, b), loss

      (states, _), losses = jax.lax.scan(body, (states, batches_t), ts)
      return states, states.params, losses

    # Carry each run's un-noised iterate of its last step taken.
    def body_clean(carry, t):
      s, clean, b = carry
      s_next, loss, step_clean, b = step_runs(s, hyper, t, x_tr, y_tr, x_flat, b)
      return (s_next, tree_where(s_next.steps > s.steps, step_clean, clean), b), loss

    (states, clean, _), losses = jax.lax.scan(body_clean, (states, states.params, batches_t), ts)
    return states, clean, losses

  def chunk(states: RunState, hyper: Hyper, t0, data):
    before = states
    states, judged_params, losses = train_steps(states, hyper, t0, data)
    metrics = eval_runs(states._replace(params=judged_params), data)
    judged = jax.vmap(stop_rule)(states, metrics)
    if before_noise:
      # A run that stops here returns the network it was judged on.
      ended = states.active & ~judged.active & ~judged.diverged
      judged = judged._replace(params=tree_where(ended, judged_params, judged.params))
    states = judged
    # A diverged run keeps its last finite parameters.
    states = states._replace(
      params=tree_where(states.diverged & before.active, before.params, states.params)
    )
    return states, metrics, jnp.nanmean(losses, axis=0)

  def first_eval(states: RunState, data):
    metrics = eval_runs(states, data)
    return jax.vmap(stop_rule)(states, metrics), metrics

  run_sharding = NamedSharding(mesh, P(RUN_AXIS))
  replicated = NamedSharding(mesh, P())
  return Program(
    init=jax.jit(jax.vmap(init_one), out_shardings=run_sharding),
    chunk=jax.jit(chunk, out_shardings=(run_sharding, replicated, replicated)),
    steps=jax.jit(lambda *a: train_steps(*a)[0], out_shardings=run_sharding),
    first_eval=jax.jit(first_eval, out_shardings=(run_sharding, replicated)),
    run_sharding=run_sharding,
    replicated=replicated,
  )
