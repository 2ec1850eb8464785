"""Robust accuracy: against the closed form of a linear model, and batched over runs."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import htsgd_jax
from htsgd_jax import models


def linear(params, x):
  return x @ params["w"] + params["b"]


def two_class_problem(seed=0, n=2000, d=20):
  rng = np.random.default_rng(seed)
  params = dict(w=rng.normal(size=(d, 2)).astype(np.float32), b=np.float32([0.3, -0.3]))
  x = (0.5 * rng.normal(size=(n, d))).astype(np.float32)
  y = rng.integers(0, 2, n)  # some labels wrong: those points are never robust
  return params, x, y


def worst_case_accuracy(params, x, y, eps, norm):
  """Closed form: correct under every ‖δ‖ ≤ ε iff the margin exceeds ε ‖w_y − w_other‖_dual."""
  w, b = np.asarray(params["w"], float), np.asarray(params["b"], float)
  gap = w[:, 1] - w[:, 0]
  sign = np.where(y == 1, 1.0, -1.0)
  margin = sign * (x.astype(float) @ gap + b[1] - b[0])
  dual = np.abs(gap).sum() if norm == math.inf else np.sqrt((gap**2).sum())
  slack = margin - eps * dual
  # Points within float32 rounding of the boundary may fall either way.
  return float(np.mean(slack > 0)), float(np.mean(np.abs(slack) < 1e-4))


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
@pytest.mark.parametrize("norm", [math.inf, 2])
def test_both_attacks_find_the_linear_models_worst_case(attack, norm):
  params, x, y = two_class_problem()
  for eps in (0.0, 0.02, 0.1, 0.3):
    want, ambiguous = worst_case_accuracy(params, x, y, eps, norm)
    got = htsgd_jax.robust_accuracy(linear, params, x, y, eps, attack=attack, norm=norm)
    assert abs(got - want) <= ambiguous + 1e-6, (eps, got, want)
    assert ambiguous <= 1 / len(y)
  # Not trivial: the clean accuracy is neither 0 nor 1, and ε = 0.3 costs over 40% of it.
  clean, robust = (worst_case_accuracy(params, x, y, e, norm)[0] for e in (0.0, 0.3))
  assert 0.3 < clean < 0.7 and robust < 0.6 * clean


def test_batches_do_not_change_the_answer():
  params, x, y = two_class_problem(seed=1, n=1001)
  whole = htsgd_jax.robust_accuracy(linear, params, x, y, 0.1, attack="pgd", batch_size=2000)
  parts = htsgd_jax.robust_accuracy(linear, params, x, y, 0.1, attack="pgd", batch_size=64)
  assert whole == parts


def test_batched_over_runs_agrees_with_one_run_at_a_time():
  model = models.FCN(width=16, num_classes=3, depth=2)
  x = jax.random.normal(jax.random.key(0), (300, 8))
  y = jax.random.randint(jax.random.key(1), (300,), 0, 3)
  runs = [model.init(jax.random.key(s), x[:1])["params"] for s in (2, 3, 4)]

  def apply(p, inputs):
    return model.apply({"params": p}, inputs)

  eps = [0.0, 0.1, 0.5]
  batched = htsgd_jax.robust_accuracies(apply, runs, x, y, eps, attack="pgd", steps=5)
  assert batched.shape == (3, 3)
  for i, p in enumerate(runs):
    for j, e in enumerate(eps):
      one = htsgd_jax.robust_accuracy(apply, p, x, y, e, attack="pgd", steps=5)
      assert batched[i, j] == pytest.approx(one, abs=1e-6)
  clean = np.mean(np.argmax(np.asarray(jax.vmap(apply, (0, None))(
    htsgd_jax.program.stack(runs), x)), -1) == np.asarray(y), axis=1)  # fmt: skip
  np.testing.assert_allclose(batched[:, 0], clean, atol=1e-6)  # ε = 0 is the clean accuracy
  assert np.all(batched[:, 2] < batched[:, 0])  # and the attack bites


def test_pgd_stays_inside_the_ball():
  params, x, y = two_class_problem(seed=2, n=50)
  for norm in (math.inf, 2):
    moved = htsgd_jax.robustness.perturb(linear, params, jnp.asarray(x), jnp.asarray(y), 0.1,
                                         attack="pgd", norm=norm, steps=7)  # fmt: skip
    delta = np.asarray(moved) - x
    size = np.abs(delta).max(1) if norm == math.inf else np.linalg.norm(delta, axis=1)
    assert size.max() <= 0.1 * (1 + 1e-5)
    assert size.min() >= 0.1 * (1 - 1e-3)  # a linear model's worst case is on the sphere


@pytest.mark.parametrize(
  "kwargs, message",
  [
    (dict(eps=float("nan")), "eps must be finite"),
    (dict(eps=-0.1), "eps must be finite"),
    (dict(eps=0.1, attack="cw"), "attack must be one of"),
    (dict(eps=0.1, norm=1), "norm must be inf"),
    (dict(eps=0.1, attack="pgd", steps=0), "pgd needs steps"),
  ],
)
def test_bad_arguments_are_refused_with_what_to_do(kwargs, message):
  params, x, y = two_class_problem(n=10)
  with pytest.raises(ValueError, match=message):
    htsgd_jax.robust_accuracy(linear, params, x, y, **kwargs)


def test_saturated_logits_do_not_hide_the_worst_case():
  # Logits × 1000 saturate the softmax: a cross-entropy attack's gradient is then exactly 0
  # in float32 and it perturbs nothing. The margin loss still finds the same worst case.
  params, x, y = two_class_problem(seed=3)
  loud = {k: 1000 * v for k, v in params.items()}
  for attack in ("fgsm", "pgd"):
    quiet_acc = htsgd_jax.robust_accuracy(linear, params, x, y, 0.1, attack=attack)
    loud_acc = htsgd_jax.robust_accuracy(linear, loud, x, y, 0.1, attack=attack)
    assert loud_acc == pytest.approx(quiet_acc, abs=2 / len(y))
    assert loud_acc < htsgd_jax.robust_accuracy(linear, loud, x, y, 0.0) - 0.1
