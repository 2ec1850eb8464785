"""Each run's smallest network at the accuracy you need: searched, built for real, checked, timed.

The search is :func:`experiments.tuning.search` (on the test split); the
smallest version is built with :func:`htsgd_jax.compact_dense` (an FCN) or
:func:`htsgd_jax.compact_conv` (a VGG), checked to compute its masked
version's logits, and timed against the full network; optionally it is
fine-tuned (:func:`fine_tuned`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.timing import timed_interleaved
from experiments import tuning
from experiments.analysis import apply_fn
from experiments.runs import FinishedRun
from htsgd_jax import compact as compact_lib
from htsgd_jax import compression, finetune, models
from htsgd_jax.columns import CLASSIFIER_NAME
from htsgd_jax.config import TrainConfig
from htsgd_jax.data import Dataset
from htsgd_jax.program import evaluate, over_runs, runs_in_a_loop, stack

LATENCY_BATCHES = (1, 1000)

# The compact network must compute the masked one's logits to float32 rounding.
MATCH_TOLERANCE = 1e-4


class Compact(NamedTuple):
  """A network with its removed units gone: what it keeps, how to run it, what it costs."""

  params: dict
  apply: Callable  # apply(params, x) -> logits, jitted, float32
  units: int  # hidden units (filters) kept, over all hidden layers
  cost: dict  # parameters, flops per example


@functools.cache
def _vgg_apply(channels: tuple, num_classes: int) -> Callable:
  model = models.VGG11Wide(num_classes=num_classes, channels=channels)
  return jax.jit(lambda params, x: model.apply({"params": params}, x))


_dense_apply = jax.jit(compact_lib.dense_apply)


def _layout(cfg: TrainConfig) -> tuple | None:
  """The VGG channel layout ``cfg`` trains, or None for a dense network."""
  model = models.build_model(cfg.model, 2, cfg.width)
  return tuple(model.channels) if models.has_convolutions(model) else None


def _network(params, layout, dataset: Dataset) -> Compact:
  if layout is None:
    units = sum(np.shape(v["kernel"])[1] for k, v in params.items() if k != CLASSIFIER_NAME)
    return Compact(params, _dense_apply, units, compact_lib.dense_cost(params))
  units = sum(c for c in layout[1:] if c != "M")  # conv_0 is not a hidden layer
  apply = _vgg_apply(layout, dataset.num_classes)
  return Compact(params, apply, units, compact_lib.conv_cost(params, layout, dataset.input_shape))


def as_is(params, cfg: TrainConfig, dataset: Dataset) -> Compact:
  """The network at its full size, removed units (if any) still in place."""
  return _network(params, _layout(cfg), dataset)


def compact(params, cfg: TrainConfig, dataset: Dataset) -> Compact:
  """``params`` (removed units zero) as the smaller network that computes the same."""
  layout = _layout(cfg)
  if layout is None:
    return _network(compact_lib.compact_dense(params).params, None, dataset)
  return _network(*compact_lib.compact_conv(params, layout), dataset)


def measure(
  trained: list[FinishedRun], found, dataset: Dataset, timing_repeats: int
) -> tuple[list[dict], list]:
  """Builds every run's smallest network for real; checks it against the masked one; times it.

  A run with no version at the target accuracy is measured at full size.
  Returns a row per run and each run's smallest network, masked (the full
  architecture, its removed units zero: the compact network's logits).
  """
  cfg = trained[0].config
  # The check is of the compaction, so both sides compute in float32: a bfloat16 forward pass
  # differs from the float32 compact one by its rounding (~1e-3 of the logits), not by a bug.
  apply = apply_fn(dataclasses.replace(cfg, compute_dtype="float32"), dataset.num_classes)
  x_check = jnp.asarray(dataset.x_test[:1000])
  inputs = {
    b: jnp.asarray(np.resize(dataset.x_test, (b, *dataset.input_shape))) for b in LATENCY_BATCHES
  }
  rows, smallest = [], []
  for i, t in enumerate(trained):
    masked = t.params
    full = as_is(t.params, cfg, dataset)
    if found.units[i, 0] < 0:
      # No version of this network reaches the target: it counts at full size.
      small, mismatch = full, 0.0
    else:
      masked = compression.without_units(
        t.params, found.units[i, 0], found.n_units, cfg.conv_column
      )
      small = compact(masked, cfg, dataset)
      want = np.asarray(apply(masked, x_check))
      got = np.asarray(small.apply(small.params, x_check))
      mismatch = float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30))
      if not mismatch <= MATCH_TOLERANCE:
        raise AssertionError(
          f"the compact network of {t.method} seed {t.seed} differs from its masked version"
          f" by {mismatch:.2e} of the logit scale; this is a bug in compact_dense/compact_conv."
        )
    row = dict(
      compact_widths=small.units,
      compact_mismatch=mismatch,
      **{f"compact_{k}": v for k, v in small.cost.items()},
      **{f"full_{k}": v for k, v in full.cost.items()},
    )
    # On the device first, as when serving: the timings are the forward passes alone.
    networks = dict(full=full, compact=small)
    on_device = {name: jax.device_put(n.params) for name, n in networks.items()}
    for b in LATENCY_BATCHES:
      times = timed_interleaved(
        {
          name: (lambda b=b, p=params, f=networks[name].apply: f(p, inputs[b]))
          for name, params in on_device.items()
        },
        timing_repeats if b > 1 else 5 * timing_repeats,
      )
      row[f"full_latency_b{b}_ms"] = 1e3 * times["full"]["median"]
      row[f"compact_latency_b{b}_ms"] = 1e3 * times["compact"]["median"]
    rows.append(row)
    smallest.append(masked)
  return rows, smallest


def fine_tuned(
  trained: list[FinishedRun], smallest: list, dataset: Dataset, steps: int
) -> list[dict]:
  """Every smallest network after ``steps`` of plain SGD, its removed units held removed.

  The same for every method: the run's learning rate and batch size, the
  same minibatches (:func:`htsgd_jax.fine_tune`). One method's runs are
  tuned at once, to bound memory. Returns per run its test accuracy (%) and
  the parameters its compact version keeps, as a fraction of the full
  network: a network counted at full size because it misses the target
  unpruned (group lasso's can) is counted here by the units it really has.
  Both are None where fine-tuning diverged.
  """
  cfg = trained[0].config
  apply = apply_fn(cfg, dataset.num_classes)
  accuracy = jax.jit(
    over_runs(
      lambda p: evaluate(apply, p, dataset.x_test, dataset.y_test, cfg.eval_batch_size)[1],
      (0,),
      runs_in_a_loop(trained[0].params),
    )
  )
  full = as_is(trained[0].params, cfg, dataset).cost["parameters"]
  out = [dict(fine_tuned_test_accuracy=None, fine_tuned_parameters_kept=None) for _ in trained]
  for method in dict.fromkeys(t.method for t in trained):
    idx = [i for i, t in enumerate(trained) if t.method == method]
    tuned = finetune.fine_tune(
      apply,
      [smallest[i] for i in idx],
      dataset.x_train,
      dataset.y_train,
      steps,
      cfg.lr,
      min(cfg.batch_size, len(dataset.y_train)),
    )
    accs = np.asarray(accuracy(stack(tuned)))
    for i, params, a in zip(idx, tuned, accs):
      if all(bool(np.isfinite(leaf).all()) for leaf in jax.tree.leaves(params)):
        kept = compact(params, cfg, dataset).cost["parameters"]
        out[i] = dict(fine_tuned_test_accuracy=float(a), fine_tuned_parameters_kept=kept / full)
  return out


def curve_parameters(trained: list[FinishedRun], found, dataset: Dataset) -> np.ndarray:
  """``(runs, points)``: parameters of the compact network at each curve point."""
  cfg = trained[0].config
  out = np.empty(found.curve.shape)
  for i, t in enumerate(trained):
    for j, k in enumerate(found.grid_units):
      masked = compression.without_units(t.params, k, found.n_units, cfg.conv_column)
      out[i, j] = compact(masked, cfg, dataset).cost["parameters"]
  return out


def evaluate_methods(
  trained: list[FinishedRun], dataset: Dataset, delta: float, timing_repeats: int
) -> tuple[list[dict], list[dict], list]:
  """Every run's smallest network within Δ of plain SGD, built, checked and timed.

  Returns one row per run (the table's and ``compare.csv``'s), one curve per
  run (test accuracy against parameters kept over the search grid), and each
  run's smallest network, masked (see :func:`measure`).
  """
  found, accuracy, reference = tuning.search(trained, dataset, delta, own=True)
  measured, smallest = measure(trained, found, dataset, timing_repeats)
  parameters = curve_parameters(trained, found, dataset)
  rows, curves = [], []
  for i, t in enumerate(trained):
    units, own_units = found.units[i]
    rows.append(
      dict(
        method=t.method,
        strength=t.strength,
        seed=t.seed,
        status=t.record["status"],
        steps=t.record["steps"],
        test_accuracy=float(accuracy[i]),
        target_accuracy=float(reference[i] - delta),
        reached_target=bool(units >= 0),
        units_removed=max(int(units), 0),
        units_kept=1 - max(int(units), 0) / found.n_units,
        parameters_kept=measured[i]["compact_parameters"] / measured[i]["full_parameters"],
        pruned_test_accuracy=float(found.accuracy[i, 0]),
        own_units_kept=1 - max(int(own_units), 0) / found.n_units,
        own_pruned_test_accuracy=float(found.accuracy[i, 1]),
        **measured[i],
        wall_time_s=t.record.get("wall_time_s"),
      )
    )
    curves.append(
      dict(
        method=t.method,
        reached=bool(units >= 0),
        parameters=parameters[i],
        test_accuracy=found.curve[i],
        hidden_units=found.n_units - found.grid_units,
        points=[
          dict(
            method=t.method,
            seed=t.seed,
            units_removed=int(k),
            parameters=int(parameters[i, j]),
            test_accuracy=float(found.curve[i, j]),
          )
          for j, k in enumerate(found.grid_units)
        ],
      )
    )
  return rows, curves, smallest
