"""Tail-index estimators (htsgd_jax.tail_index): Hill on column norms, Mohammadi on entries."""

import jax
import numpy as np
import pytest

from htsgd_jax import tail_index
from htsgd_jax.stable import symmetric_stable


@pytest.mark.parametrize("alpha", [0.8, 1.5, 3.0])
def test_hill_on_pareto(alpha):
  x = np.random.default_rng(0).pareto(alpha, 200000) + 1.0  # exact Pareto(alpha)
  assert tail_index.hill(x, k=5000) == pytest.approx(alpha, rel=0.05)


@pytest.mark.parametrize("alpha", [1.2, 1.5, 1.75])
def test_hill_on_stable_tails(alpha):
  # |SαS| has a Pareto tail of index α; Hill sees it with a small k.
  x = symmetric_stable(jax.random.key(2), (400000,), alpha)
  assert tail_index.hill(x, k=400) == pytest.approx(alpha, abs=0.2)


@pytest.mark.parametrize("alpha", [0.8, 1.2, 1.5, 1.75, 1.95])
def test_mohammadi_on_stable_samples(alpha):
  x = symmetric_stable(jax.random.key(3), (250000,), alpha)
  assert tail_index.mohammadi(x) == pytest.approx(alpha, abs=0.1)


def test_mohammadi_sees_gaussians_as_two():
  x = np.random.default_rng(1).normal(size=250000)
  assert tail_index.mohammadi(x) > 1.9


def test_estimators_reject_tiny_samples():
  with pytest.raises(ValueError, match="at least 4"):
    tail_index.hill([1.0, 2.0])
  with pytest.raises(ValueError, match="k must be"):
    tail_index.hill(np.arange(1.0, 11.0), k=10)
