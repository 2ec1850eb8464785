"""Training: minibatch SGD with heavy-tailed noise, many runs in one program.

This module gathers the training API in one place (:func:`train` trains one
run, :class:`Trainer` a batch of them, ``python -m experiments.train`` is its
command); each part lives in its
own module: the run configuration in :mod:`htsgd_jax.config`, the compiled
program in :mod:`htsgd_jax.program`, the host-side loop in
:mod:`htsgd_jax.driver`, the multi-process helpers in
:mod:`htsgd_jax.distributed`.

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

from htsgd_jax.config import CONVERGE_ON, TrainConfig, check_fits, group_runs
from htsgd_jax.distributed import RUN_AXIS, any_process, broadcast_json, run_mesh, to_host
from htsgd_jax.driver import RunResult, Trainer, load_data, train, versions
from htsgd_jax.program import Hyper, Program, RunState, build_program, evaluate, optimizer_parts

__all__ = [
  "CONVERGE_ON",
  "RUN_AXIS",
  "Hyper",
  "Program",
  "RunResult",
  "RunState",
  "TrainConfig",
  "Trainer",
  "any_process",
  "broadcast_json",
  "build_program",
  "check_fits",
  "evaluate",
  "group_runs",
  "load_data",
  "optimizer_parts",
  "run_mesh",
  "to_host",
  "train",
  "versions",
]
