"""Test set-up: four simulated CPU devices, so sharded code is exercised."""

import os

# Must happen before jax initialises its backend.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402  (after the environment it reads)


@pytest.fixture(scope="session")
def trained_digits():
  """Two FCNs trained on 8×8 digits (σ 0 and 0.05), with their apply: (dataset, apply, params)."""
  from htsgd_jax import data, models
  from htsgd_jax.training import TrainConfig, Trainer

  ds = data.load_dataset("digits")
  cfgs = [
    TrainConfig(
      dataset="digits",
      width=48,
      lr=0.1,
      batch_size=100,
      max_steps=150,
      eval_every=50,
      target_accuracy=None,
      seed=s,
      noise_type=2,
      sigma=0.05 * (s - 1),
    )
    for s in (1, 2)
  ]
  results = Trainer(cfgs, ds).run(progress=False)
  model = models.FCN(width=48, num_classes=10)

  def apply(p, x):
    return model.apply({"params": p}, x)

  return ds, apply, [r.params for r in results]
