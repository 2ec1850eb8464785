"""The run configuration (htsgd_jax.config): its checks and its fingerprint."""

import dataclasses

import pytest

from htsgd_jax.config import TrainConfig, group_runs


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


def test_group_runs_puts_plain_runs_with_noisy_ones():
  cfgs = [
    TrainConfig(width=w, noise_type=t, sigma=s, seed=k)
    for w in (8, 16)
    for t, s in ((0, 0.0), (1, 0.1))
    for k in (1, 2)
  ]
  groups = group_runs(cfgs)
  assert [len(g) for g in groups] == [4, 4]
  assert {c.width for c in groups[0]} == {8}


def test_converge_on_is_checked():
  with pytest.raises(ValueError, match="converge_on must be one of"):
    TrainConfig(converge_on="sometimes")


def test_bad_configs_raise_clear_errors():
  for kwargs, msg in [
    (dict(alpha=3.0), "alpha must lie"),
    (dict(sigma=-1.0), "sigma must be"),
    (dict(noise_type=5), "noise_type"),
    (dict(lr=0.0), "lr must be"),
    (dict(target_accuracy=150.0), "percentage"),
    (dict(model="mlp"), "unknown model"),
  ]:
    with pytest.raises(ValueError, match=msg):
      TrainConfig(**kwargs)
