"""The host side of training: the loop that drives the compiled program.

:class:`Trainer` compiles one program (:func:`htsgd_jax.program.build_program`)
for runs that share static settings, then drives it: evaluation every
``eval_every`` steps, progress, history, checkpoints (resumed bit for bit),
SIGINT/SIGTERM, and each run's :class:`RunResult`. With several processes,
every process drives the same program and process 0 writes
(:mod:`htsgd_jax.distributed`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from htsgd_jax import checkpoints, interrupts, records
from htsgd_jax import models as models_lib
from htsgd_jax.config import TrainConfig, check_fits
from htsgd_jax.data import Dataset, load_dataset
from htsgd_jax.distributed import (
  any_process,
  broadcast_checkpoint,
  broadcast_flag,
  run_mesh,
  through_key_data,
  to_host,
)
from htsgd_jax.program import Hyper, build_program


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
    self.program = build_program(
      self.cfg,
      self.model,
      dataset.input_shape,
      len(dataset.y_train),
      self.mesh,
      self.noisy,
      self.lasso,
    )
    p = self.program
    self._init, self._chunk, self._first_eval = p.init, p.chunk, p.first_eval
    self._run_sharding, self._replicated = p.run_sharding, p.replicated

  def apply(self, params, x):
    return self.model.apply({"params": params}, x)

  def placed_data(self):
    """``(x_train, y_train, x_test, y_test)`` on the devices, as the program takes them."""
    ds = self.dataset
    return jax.device_put(
      (
        jnp.asarray(ds.x_train),
        jnp.asarray(ds.y_train),
        jnp.asarray(ds.x_test),
        jnp.asarray(ds.y_test),
      ),
      self._replicated,
    )

  def per_run_inputs(self):
    """``(seeds, hyper)``: the program's per-run inputs, padded to the devices, placed."""
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
    self,
    progress: bool = True,
    checkpoint_dir=None,
    checkpoint_every_s: float = 300.0,
    on_stop: Callable[[int], None] | None = None,
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

    ``on_stop(k)`` hears, at each evaluation, how many runs stopped there
    (converged, diverged or at ``max_steps``), so that a caller's progress
    counts runs as they stop. The step bar shows active and stopped runs;
    when runs stop at a target accuracy it gives no time left to
    ``max_steps``, which they may never reach.
    """
    cfg = self.cfg
    data = self.placed_data()
    seeds, hyper = self.per_run_inputs()
    states, t, history, elapsed, stop_time = self._start(checkpoint_dir, seeds, hyper, data)
    start = time.time() - elapsed  # time.time() - start: this group's training time so far
    last_save = time.time()
    writer = jax.process_index() == 0  # with several processes, process 0 writes
    bar = self._step_bar(progress and writer, t)

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
    stopped_before = int((~active[: self.n_runs]).sum())  # at step 0, or before a resume
    if on_stop and stopped_before:
      on_stop(stopped_before)
    with interrupts.stop_requests() as stop:
      try:
        while t < cfg.max_steps and active[: self.n_runs].any() and not any_process(stop.requested):
          was_active = active
          states, metrics, mb_loss = self._chunk(states, hyper, jnp.int32(t), data)
          metrics, active, steps, mb_loss = to_host((metrics, states.active, states.steps, mb_loss))
          t = min(t + cfg.eval_every, cfg.max_steps)
          self._log(history, steps, was_active, metrics, mb_loss)
          stopped_now = np.flatnonzero(was_active[: self.n_runs] & ~active[: self.n_runs])
          for i in stopped_now:
            stop_time[i] = time.time() - start
          if on_stop and stopped_now.size:
            on_stop(int(stopped_now.size))
          self._show(bar, t, metrics, was_active, active)
          # Process 0's clock decides, so that all processes save together.
          if checkpoint_dir and broadcast_flag(time.time() - last_save >= checkpoint_every_s):
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

  def _start(self, checkpoint_dir, seeds, hyper, data):
    """(states, t, history, elapsed, stop times): from the checkpoint, or fresh and evaluated."""
    resumed = self._restore(checkpoint_dir, seeds, hyper) if checkpoint_dir else None
    if resumed:
      return resumed
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
    return states, 0, history, 0.0, [None] * self.n_runs

  def _step_bar(self, show: bool, t: int):
    """The step bar from step ``t``; with a target accuracy it has no end (none is known)."""
    cfg = self.cfg
    to_target = cfg.target_accuracy is not None
    return _progress_bar(
      show,
      total=None if to_target else cfg.max_steps,
      initial=t,
      unit="step",
      dynamic_ncols=True,
      desc=f"{self.dataset.name} {cfg.model} n={cfg.width} runs={self.n_runs}"
      + (
        f" (to {cfg.target_accuracy:g}% train acc., at most {cfg.max_steps} steps)"
        if to_target
        else ""
      ),
    )

  def _show(self, bar, t: int, metrics, was_active, active) -> None:
    """Moves the step bar to ``t``; shows the runs that were active: mean metrics, counts."""
    bar.update(t - bar.n)
    live = was_active[: self.n_runs]

    def mean(values):
      return _finite_mean(values[: self.n_runs][live])

    bar.set_postfix(
      {
        "loss": f"{mean(metrics.train_loss):.4f}",
        "train_acc": f"{mean(metrics.train_accuracy):.2f}",
        f"{self.cfg.held_out}_acc": f"{mean(metrics.test_accuracy):.2f}",
        "active": int(active[: self.n_runs].sum()),
        "stopped": int((~active[: self.n_runs]).sum()),
      }
    )

  def _restore(self, checkpoint_dir, seeds, hyper):
    """(states, t, history, elapsed, stop times) from ``checkpoint_dir``, or None.

    Process 0 reads the checkpoint and sends it to the others, which need no
    shared file system.
    """
    template = jax.eval_shape(self._init, seeds, hyper)
    loaded = checkpoints.load(checkpoint_dir, template) if jax.process_index() == 0 else None
    if jax.process_count() > 1:
      loaded = broadcast_checkpoint(loaded, template)
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
      return through_key_data(lambda a: jax.device_put(np.asarray(a), self._run_sharding), x)

    return jax.tree.map(place, host_states)

  def _log(self, history, steps, was_active, metrics, mb_loss):
    for i in range(self.n_runs):
      if not was_active[i]:
        continue
      h = history[i]
      h["step"].append(int(steps[i]))
      for name, values in metrics._asdict().items():
        h[name].append(float(values[i]))
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

  def set_postfix(self, ordered_dict=None, **kwargs) -> None:
    del ordered_dict, kwargs

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


def _finite_mean(x: np.ndarray) -> float:
  finite = x[np.isfinite(x)]
  return float(finite.mean()) if finite.size else float("nan")


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
