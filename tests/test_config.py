"""The run configuration (htsgd_jax.config): its checks and its fingerprint."""

import dataclasses

import pytest

from htsgd_jax.config import TrainConfig


def test_new_fields_keep_the_fingerprints_of_recorded_runs():
  from experiments.presets import get_experiments

  ecg, mnist = (
    get_experiments(p)[0].runs()[0].config for p in ("ecg5000_fcn:quick", "mnist_fcn:quick")
  )
  # Values from before group_lasso and validation existed: old run directories still match.
  assert (ecg.fingerprint(), mnist.fingerprint()) == ("5dc726bd09", "36ca89f87c")
  assert dataclasses.replace(ecg, group_lasso=0.1).fingerprint() != ecg.fingerprint()
  assert dataclasses.replace(ecg, validation=0.2).fingerprint() != ecg.fingerprint()
  with pytest.raises(ValueError, match="validation"):
    TrainConfig(validation=1.0)
