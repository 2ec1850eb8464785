"""The paper's effect on real data, through the same pipeline as the main job."""

import dataclasses

import numpy as np
import pytest

from experiments import pipeline
from experiments.presets import get_experiments
from htsgd_jax.train import load_data


def _compare(preset, seeds, tmp_path):
  exp = dataclasses.replace(get_experiments(preset)[0], seeds=seeds)
  dataset = load_data(exp.noisy)
  runs = exp.runs()
  assert pipeline.train_missing(runs, dataset, tmp_path, exp.name, progress=False)
  rows = pipeline.analyse(runs, dataset, tmp_path, exp.name, exp.prune_fraction)
  by_arm = {arm: [r for r in rows if r["arm"] == arm] for arm in ("plain", "noisy")}
  assert all(r["status"] == "converged" for r in rows)
  mean = lambda arm, key: float(np.mean([r[key] for r in by_arm[arm]]))
  return mean


def test_ecg5000_noisy_networks_prune_far_more_at_equal_accuracy(tmp_path):
  mean = _compare("ecg5000_fcn:quick", (1, 2), tmp_path)
  assert mean("noisy", "fraction_pruned") > 2.5 * mean("plain", "fraction_pruned")
  assert mean("noisy", "pruned_test_accuracy") > mean("plain", "pruned_test_accuracy") - 1.0
  assert mean("noisy", "hill_column_norms") < 3.0 < 20.0 < mean("plain", "hill_column_norms")


@pytest.mark.slow
def test_mnist_noisy_networks_prune_more_at_similar_accuracy(tmp_path):
  mean = _compare("mnist_fcn:quick", (1, 2, 3), tmp_path)
  assert mean("noisy", "fraction_pruned") > 1.6 * mean("plain", "fraction_pruned")
  assert mean("noisy", "pruned_test_accuracy") > mean("plain", "pruned_test_accuracy") - 2.0
