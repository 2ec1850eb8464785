"""htsgd_jax.driver, the host loop: stop rules, divergence, plain SGD, batched and sharded runs."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from htsgd_jax import data
from htsgd_jax.training import TrainConfig, Trainer, evaluate, run_mesh, train

DIGITS = data.load_dataset("digits")
BASE = dict(dataset="digits", width=64, lr=0.1, batch_size=100, eval_every=10, max_steps=200)


def test_stops_at_target_accuracy():
  r = train(TrainConfig(**BASE, target_accuracy=80.0, noise_type=0), DIGITS, progress=False)
  assert r.status == "converged"
  assert r.final["train_accuracy"] >= 80.0
  assert r.steps < 200 and r.steps % 10 == 0
  assert r.history["step"][0] == 0 and r.history["step"][-1] == r.steps
  # It had not converged at the previous evaluation.
  assert r.history["train_accuracy"][-2] < 80.0


def test_stops_at_max_steps():
  r = train(
    TrainConfig(**(BASE | dict(max_steps=25)), target_accuracy=100.0), DIGITS, progress=False
  )
  assert r.status == "max_steps" and r.steps == 25


def test_divergence_is_a_status_not_a_crash():
  cfg = TrainConfig(**(BASE | dict(lr=1e30)), target_accuracy=100.0, noise_type=0)
  r = train(cfg, DIGITS, progress=False)
  assert r.status == "diverged"
  assert r.steps < 200
  # The returned parameters are the last finite ones.
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(r.params))


def test_sigma_zero_training_equals_plain_optax_sgd():
  cfg = TrainConfig(**(BASE | dict(max_steps=30)), target_accuracy=100.0, sigma=0.0, noise_type=1)
  ours = train(cfg, DIGITS, progress=False)
  trainer = Trainer([cfg], DIGITS)
  # Replay the same minibatches with optax.sgd by hand.
  init_key, data_key, _ = jax.random.split(jax.random.key(cfg.seed), 3)
  params = trainer.model.init(init_key, jnp.zeros((1, 8, 8, 1)))["params"]
  tx = optax.sgd(cfg.lr)
  state = tx.init(params)
  x, y = jnp.asarray(DIGITS.x_train), jnp.asarray(DIGITS.y_train)
  spe = len(y) // cfg.batch_size
  perm = jax.random.permutation(data_key, len(y))

  @jax.jit
  def step(params, state, idx):
    def loss(p):
      return optax.softmax_cross_entropy_with_integer_labels(
        trainer.apply(p, x[idx]), y[idx]
      ).mean()

    updates, state = tx.update(jax.grad(loss)(params), state, params)
    return optax.apply_updates(params, updates), state

  for t in range(30):
    if t % spe == 0 and t > 0:
      perm = jax.random.permutation(jax.random.fold_in(data_key, t // spe), len(y))
    idx = perm[(t % spe) * cfg.batch_size : (t % spe + 1) * cfg.batch_size]
    params, state = step(params, state, idx)
  jax.tree.map(
    lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
    ours.params,
    jax.device_get(params),
  )


def test_noise_stops_after_convergence_and_is_paired_by_seed():
  plain = TrainConfig(**BASE, target_accuracy=85.0, noise_type=0, seed=3)
  noisy = TrainConfig(**BASE, target_accuracy=85.0, noise_type=2, sigma=0.05, seed=3)
  r_plain, r_noisy = Trainer([plain, noisy], DIGITS).run(progress=False)
  assert r_noisy.status == "converged"
  # Same seed, same init and data: the first evaluation coincides.
  assert r_plain.history["train_loss"][0] == r_noisy.history["train_loss"][0]
  # Once converged, the run is frozen: its history ends at its own step.
  assert r_noisy.history["step"][-1] == r_noisy.steps


def test_a_trainer_refuses_runs_it_cannot_batch_or_fit():
  with pytest.raises(ValueError, match="batch_size 5000 exceeds"):
    Trainer([TrainConfig(dataset="digits", batch_size=5000)], DIGITS)
  with pytest.raises(ValueError, match="group them first"):
    Trainer([TrainConfig(width=4), TrainConfig(width=8)], DIGITS)


# ------------------------------------------------------------ converge_on
def test_before_noise_returns_the_iterate_without_its_last_noise():
  cfg = TrainConfig(**(BASE | dict(max_steps=25)), target_accuracy=None, noise_type=1, sigma=0.05)
  after = train(cfg, DIGITS, progress=False)
  before = train(
    TrainConfig(**(cfg.to_dict() | dict(converge_on="before_noise"))), DIGITS, progress=False
  )
  assert after.steps == before.steps == 25 and before.status == "max_steps"
  # Same trajectory; the returned networks differ by the last step's type-1
  # noise: one nonzero scalar per column, and nothing on the classifier.
  diff = after.params["hidden_0"]["kernel"] - before.params["hidden_0"]["kernel"]
  assert np.all(diff != 0)
  np.testing.assert_allclose(diff, np.broadcast_to(diff[:1], diff.shape), rtol=1e-4, atol=1e-7)
  np.testing.assert_array_equal(
    after.params["classifier"]["kernel"], before.params["classifier"]["kernel"]
  )
  # The history's last entry is the returned network's.
  model_apply = Trainer([cfg], DIGITS).apply
  _, acc = evaluate(model_apply, before.params, DIGITS.x_test, DIGITS.y_test)
  assert float(acc) == pytest.approx(before.final["test_accuracy"])


def test_before_noise_equals_after_noise_for_plain_sgd():
  cfg = TrainConfig(**BASE, target_accuracy=80.0, noise_type=0)
  after = train(cfg, DIGITS, progress=False)
  before = train(
    TrainConfig(**(cfg.to_dict() | dict(converge_on="before_noise"))), DIGITS, progress=False
  )
  assert (after.status, after.steps) == (before.status, before.steps) == ("converged", after.steps)
  for a, b in zip(jax.tree.leaves(after.params), jax.tree.leaves(before.params)):
    np.testing.assert_array_equal(a, b)


def _images(n_train=192, n_test=64, seed=0):
  rng = np.random.default_rng(seed)
  return data.Dataset(
    "images",
    rng.normal(size=(n_train, 32, 32, 1)).astype(np.float32),
    rng.integers(0, 10, n_train).astype(np.int32),
    rng.normal(size=(n_test, 32, 32, 1)).astype(np.float32),
    rng.integers(0, 10, n_test).astype(np.int32),
    10,
    "numpy",
  )


def test_cnn_runs_of_one_program_are_the_runs_trained_alone():
  """Convolutional runs go one at a time inside their program on CPUs: the same runs."""
  import dataclasses

  ds = _images()
  base = TrainConfig(
    dataset="images",
    model="vgg11",
    width=2,
    lr=0.05,
    batch_size=32,
    max_steps=6,
    eval_every=3,
    target_accuracy=None,
    conv_column="filter",
    converge_on="before_noise",
  )
  cfgs = [
    dataclasses.replace(base, noise_type=0, sigma=0.0, seed=1),
    dataclasses.replace(base, noise_type=1, sigma=0.1, seed=2),
    # Diverges by the first evaluation: a stopped run, skipped while the others train on.
    dataclasses.replace(base, noise_type=1, sigma=1e30, seed=3),
  ]
  together = Trainer(cfgs, ds).run(progress=False)
  assert [r.status for r in together] == ["max_steps", "max_steps", "diverged"]
  for cfg, run in zip(cfgs[:2], together):
    (alone,) = Trainer([cfg], ds).run(progress=False)
    for a, b in zip(jax.tree.leaves(run.params), jax.tree.leaves(alone.params)):
      # Not bit for bit: XLA may fuse one run's program differently from a pair's.
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  # ...and the noise reached the hidden convolutions, not the first one or the classifier.
  plain, noisy = (r.params for r in together[:2])
  assert not np.allclose(plain["conv_3"]["kernel"], noisy["conv_3"]["kernel"])


@pytest.mark.parametrize(
  "narrow",
  [
    True,  # the preset's data and settings, a VGG-11 of width 2: seconds
    pytest.param(False, marks=pytest.mark.slow),  # vgg11_wide itself: minutes on 2 cores
  ],
)
def test_cifar10_vgg_trains_from_a_tfds_data_directory(narrow):
  """The CIFAR CNN preset, on TFDS mock data (no download)."""
  import dataclasses

  import tensorflow_datasets as tfds

  from experiments.presets import get_experiments

  (exp,) = get_experiments("cifar10_vgg:quick")
  cfg = dataclasses.replace(
    exp.noisy, batch_size=8, max_steps=2, eval_every=2, train_subset=None, eval_batch_size=16
  )
  if narrow:
    cfg = dataclasses.replace(cfg, model="vgg11", width=2)
  with tfds.testing.mock_data(num_examples=16):
    ds = data.load_dataset(cfg.dataset, data_dir="/nonexistent")
  assert ds.input_shape == (32, 32, 3)
  (run,) = Trainer([cfg], ds).run(progress=False)
  assert run.status == "max_steps" and run.steps == 2
  assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(run.params))
  width = 16 if narrow else 1024
  assert run.params["conv_7"]["kernel"].shape == (3, 3, width, width)


# ----------------------------------------------- runs batched, sharded over devices
BATCHED = TrainConfig(
  dataset="digits",
  width=48,
  lr=0.1,
  batch_size=100,
  eval_every=10,
  max_steps=120,
  target_accuracy=90.0,
  noise_type=2,
  alpha=1.75,
)


def _close(a, b):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=2e-5, atol=2e-6), a, b)


def test_tests_run_on_four_simulated_devices():
  assert jax.device_count() == 4


def test_batched_runs_equal_separate_runs_seed_by_seed():
  cfgs = [
    BATCHED.__class__(**(BATCHED.to_dict() | dict(seed=s, sigma=sg)))
    for s, sg in ((1, 0.0), (2, 0.02), (3, 0.05), (4, 0.02), (5, 0.0))
  ]
  batched = Trainer(cfgs, DIGITS).run(progress=False)
  # Runs stop at their own step inside the batch...
  assert len({r.steps for r in batched}) > 1
  for cfg, b in zip(cfgs, batched):
    alone = Trainer([cfg], DIGITS, mesh=run_mesh(jax.devices()[:1])).run(progress=False)[0]
    # ...and match a run trained alone, on one device, that stops at its own step.
    assert (b.status, b.steps) == (alone.status, alone.steps)
    assert b.history["step"] == alone.history["step"]
    np.testing.assert_allclose(b.history["train_loss"], alone.history["train_loss"], rtol=1e-4)
    _close(b.params, alone.params)


def test_alpha_is_batched_too():
  cfgs = [
    BATCHED.__class__(
      **(BATCHED.to_dict() | dict(alpha=a, sigma=0.02, max_steps=20, target_accuracy=100.0))
    )
    for a in (1.5, 2.0)
  ]
  batched = Trainer(cfgs, DIGITS).run(progress=False)
  for cfg, b in zip(cfgs, batched):
    _close(b.params, Trainer([cfg], DIGITS).run(progress=False)[0].params)


def test_run_axis_is_sharded_and_uneven_counts_are_padded():
  cfgs = [BATCHED.__class__(**(BATCHED.to_dict() | dict(seed=s, max_steps=10))) for s in (1, 2, 3)]
  trainer = Trainer(cfgs, DIGITS)
  assert trainer.n_padded == 4
  seeds, hyper = trainer.per_run_inputs()
  states = trainer._init(seeds, hyper)
  kernel = states.params["hidden_0"]["kernel"]
  assert kernel.shape[0] == 4 and len(kernel.sharding.device_set) == 4
  assert len(trainer.run(progress=False)) == 3
