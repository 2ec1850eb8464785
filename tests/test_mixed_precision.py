"""Mixed precision: bfloat16 products, everything else float32, outcomes that agree."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from htsgd_jax import data, models, noise, pruning
from htsgd_jax.training import TrainConfig, Trainer

DIGITS = data.load_dataset("digits")
BASE = TrainConfig(
  dataset="digits",
  width=256,
  lr=0.1,
  batch_size=100,
  eval_every=50,
  max_steps=300,
  target_accuracy=None,
  noise_type=2,
  sigma=0.01,
)
SEEDS = (1, 2, 3)


def _products(model, x):
  """(operand dtypes, output dtype) of every dot_general/conv in the forward pass."""
  params = model.init(jax.random.key(0), x)["params"]
  jaxpr = jax.make_jaxpr(lambda p: model.apply({"params": p}, x))(params)
  out = []
  for eqn in jaxpr.jaxpr.eqns:
    if eqn.primitive.name in ("dot_general", "conv_general_dilated"):
      out.append((tuple(v.aval.dtype.name for v in eqn.invars), eqn.outvars[0].aval.dtype.name))
  return params, out


@pytest.mark.parametrize(
  "model, shape",
  [
    (models.FCN(width=8, depth=3, num_classes=3, dtype="bfloat16"), (2, 5)),
    (models.MeanFieldNet(width=8, dtype="bfloat16"), (2, 5)),
    (models.VGG11Wide(channels=(4, "M", 8), dtype="bfloat16"), (2, 8, 8, 3)),
  ],
)
def test_bfloat16_products_take_bf16_inputs_and_accumulate_in_float32(model, shape):
  params, products = _products(model, jnp.ones(shape))
  assert products and all(p == (("bfloat16", "bfloat16"), "float32") for p in products)
  assert {x.dtype.name for x in jax.tree.leaves(params)} == {"float32"}
  assert model.apply({"params": params}, jnp.ones(shape)).dtype == jnp.float32
  # float32 compute is the plain network: float32 operands throughout.
  _, plain = _products(model.clone(dtype="float32"), jnp.ones(shape))
  assert all(p == (("float32", "float32"), "float32") for p in plain)


@pytest.mark.parametrize(
  "model, depth, dataset",
  [
    ("fcn", 2, "digits"),
    ("fcn", 3, "digits"),
    ("mean_field", 2, "digits"),
    pytest.param("vgg11_wide", 2, None, marks=pytest.mark.slow),  # minutes on 2 cores
  ],
)
def test_every_model_trains_in_bfloat16(model, depth, dataset):
  """Compiles and runs: XLA:CPU has no bf16 x bf16 -> f32 kernel on some of its dot paths."""
  if dataset is None:  # VGG: CIFAR-shaped inputs, few of them
    rng = np.random.default_rng(0)
    ds = data.Dataset(
      "cifar_like",
      rng.normal(size=(20, 32, 32, 3)).astype(np.float32),
      rng.integers(0, 10, 20).astype(np.int32),
      rng.normal(size=(10, 32, 32, 3)).astype(np.float32),
      rng.integers(0, 10, 10).astype(np.int32),
      10,
      "numpy",
    )
  else:
    ds = DIGITS
  cfg = dataclasses.replace(
    BASE,
    dataset=ds.name,
    model=model,
    depth=depth,
    width=16,
    batch_size=10,
    max_steps=2,
    eval_every=2,
    compute_dtype="bfloat16",
  )
  (result,) = Trainer([cfg], ds).run(progress=False)
  assert result.steps == 2 and np.isfinite(result.final["train_loss"])


def test_compute_dtype_is_checked_and_fingerprinted():
  with pytest.raises(ValueError, match="float32, bfloat16"):
    TrainConfig(compute_dtype="float16")
  bf16 = dataclasses.replace(BASE, compute_dtype="bfloat16")
  assert bf16.fingerprint() != BASE.fingerprint()
  assert bf16.identity()["compute_dtype"] == "bfloat16"
  # float32, the default, leaves recorded runs' fingerprints as they were.
  assert "compute_dtype" not in BASE.identity()


def test_noise_is_drawn_and_added_in_float32_under_bfloat16_compute():
  """The noise of a bf16-compute step is the float32 draw, not a bf16-rounded one."""
  model = models.FCN(width=64, num_classes=10, dtype="bfloat16")
  x, y = jnp.asarray(DIGITS.x_train[:100]), jnp.asarray(DIGITS.y_train[:100])
  params = model.init(jax.random.key(0), x)["params"]
  base, tx = optax.sgd(0.1), noise.heavy_tailed_noise(1.75, 0.05, 0.1, noise_type=2, key=3)

  def loss(p):
    return optax.softmax_cross_entropy_with_integer_labels(model.apply({"params": p}, x), y).mean()

  grads = jax.grad(loss)(params)
  assert {g.dtype.name for g in jax.tree.leaves(grads)} == {"float32"}
  updates, _ = base.update(grads, base.init(params))
  noisy, _ = tx.update(updates, tx.init(params), params)
  added = np.asarray(noisy["hidden_0"]["kernel"] - updates["hidden_0"]["kernel"])
  assert added.dtype == np.float32
  # A bf16 draw keeps 8 significant bits: almost no float32 draw is representable so.
  rounded = np.asarray(jnp.asarray(added).astype(jnp.bfloat16).astype(jnp.float32))
  assert np.mean(rounded != added) > 0.9
  # The classifier gets none, whatever the compute dtype.
  np.testing.assert_array_equal(noisy["classifier"]["kernel"], updates["classifier"]["kernel"])


def _train(compute_dtype):
  cfgs = [dataclasses.replace(BASE, seed=s, compute_dtype=compute_dtype) for s in SEEDS]
  cfgs += [dataclasses.replace(c, noise_type=0, sigma=0.0) for c in cfgs]
  return Trainer(cfgs, DIGITS).run(progress=False)


@pytest.fixture(scope="module")
def both_dtypes():
  return _train("float32"), _train("bfloat16")


def test_bfloat16_training_keeps_float32_state_and_agrees_with_float32(both_dtypes):
  f32, bf16 = both_dtypes
  apply = jax.jit(
    lambda p: models.FCN(width=256, num_classes=10).apply({"params": p}, DIGITS.x_test)
  )
  for a, b in zip(f32, bf16, strict=True):
    assert b.config.compute_dtype == "bfloat16" and b.status == "max_steps"
    assert {x.dtype.name for x in jax.tree.leaves(b.params)} == {"float32"}
    # Same seed, same data order: bf16 rounding moves the weights a little, not away
    # (measured: 0.05-0.5%). At sigma 0.05 the jumps amplify it (12-26% in the
    # classifier, one seed's last test accuracy 95.4 vs 73.4), as any perturbation would.
    for name in ("hidden_0", "classifier"):
      wa, wb = a.params[name]["kernel"], b.params[name]["kernel"]
      assert np.linalg.norm(wa - wb) < 0.01 * np.linalg.norm(wa), name
    # Digits' test set has 500 examples (one is 0.2 points); measured: equal or 0.2 apart.
    assert abs(a.final["test_accuracy"] - b.final["test_accuracy"]) <= 1.0
    # The bf16-trained network, evaluated in float32, does what its record says.
    acc = 100 * np.mean(np.argmax(apply(b.params), -1) == DIGITS.y_test)
    assert abs(acc - b.final["test_accuracy"]) <= 1.0

  # Fraction pruned by the 10% rule, per run: noise types differ far more than dtypes.
  def pruned(run):
    return float(pruning.fraction_pruned(run.params, pruning.prune(run.params, 0.1)[1]))

  pruned = [[pruned(r) for r in runs] for runs in (f32, bf16)]
  np.testing.assert_allclose(pruned[1], pruned[0], atol=0.02)  # measured: equal


# ------------------------------------------- the bfloat16 weight gradient's layout
def test_the_transposed_layout_gives_the_plain_gradients_within_bf16_rounding():
  model = models.FCN(width=64, depth=3, num_classes=10, dtype="bfloat16")
  x = jnp.asarray(DIGITS.x_train[:100]).reshape(100, -1)
  y = jnp.asarray(DIGITS.y_train[:100])
  params = model.init(jax.random.key(0), x)["params"]

  def grads(x_t):
    def loss(p):
      logits = model.apply({"params": p}, x, x_t)
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    return jax.grad(loss)(params)

  plain, fast = grads(None), grads(x.T.astype(jnp.bfloat16))
  for layer in ("hidden_0", "hidden_1", "classifier"):
    a, b = np.asarray(plain[layer]["kernel"]), np.asarray(fast[layer]["kernel"])
    assert np.abs(a - b).max() <= 0.01 * np.abs(a).max(), layer
  # The check can tell a wrong layout: the batch's columns in another order.
  wrong = grads(x[::-1].T.astype(jnp.bfloat16))["hidden_0"]["kernel"]
  a = np.asarray(plain["hidden_0"]["kernel"])
  assert np.abs(a - np.asarray(wrong)).max() > 0.2 * np.abs(a).max()


def test_the_transposed_batches_are_the_minibatches_the_plain_step_reads():
  from htsgd_jax.program import epoch_batches_t

  x = jnp.asarray(DIGITS.x_train).reshape(len(DIGITS.x_train), -1)
  perm = jax.random.permutation(jax.random.key(3), len(x))
  batches = epoch_batches_t(x.astype(jnp.bfloat16), perm, 100, len(x) // 100)
  assert batches.shape == (len(x) // 100, 64, 100) and batches.dtype == jnp.bfloat16
  for pos in (0, 5, len(x) // 100 - 1):
    idx = perm[pos * 100 : (pos + 1) * 100]
    assert bool((batches[pos] == x[idx].astype(jnp.bfloat16).T).all()), pos


def test_bfloat16_training_with_the_fast_layout_follows_the_plain_layout(monkeypatch):
  """Same minibatches in the same order, same updates within bf16 rounding."""
  cfg = dataclasses.replace(
    BASE, compute_dtype="bfloat16", noise_type=0, sigma=0.0, max_steps=40, eval_every=20
  )
  fast = Trainer([cfg], DIGITS).run(progress=False)[0]
  monkeypatch.setattr(models, "takes_transposed_input", lambda model: False)
  plain = Trainer([cfg], DIGITS).run(progress=False)[0]
  init = models.FCN(256, dtype="bfloat16").init(
    jax.random.split(jax.random.key(1), 3)[0], jnp.zeros((1, 64))
  )["params"]
  for layer in ("hidden_0", "classifier"):
    a, b = plain.params[layer]["kernel"], fast.params[layer]["kernel"]
    moved = np.abs(np.asarray(a) - np.asarray(init[layer]["kernel"])).max()
    assert moved > 0.01  # trained
    assert np.abs(np.asarray(a) - np.asarray(b)).max() < 0.05 * moved, layer
  assert plain.history["train_accuracy"] == pytest.approx(fast.history["train_accuracy"], abs=1.0)
