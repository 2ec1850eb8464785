"""Pruning rules and parameter accounting (htsgd_jax.pruning)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from htsgd_jax import pruning
from htsgd_jax.stable import symmetric_stable


def test_energy_rule_on_a_hand_built_matrix():
  # Column squared norms 50, 1, 4, 30, 15 (total 100). Ascending: 1, 4, 15, 30, 50;
  # cumulative fractions 0.01, 0.05, 0.20, ...: columns 1 and 2 go (5% <= 10%).
  w = jnp.zeros((2, 5)).at[0].set(jnp.sqrt(jnp.array([50.0, 1.0, 4.0, 30.0, 15.0])))
  params = {"hidden_0": {"kernel": w}, "classifier": {"kernel": jnp.ones((5, 3))}}
  pruned, layers = pruning.prune(params, 0.1)
  kept = np.asarray(jnp.linalg.norm(pruned["hidden_0"]["kernel"], axis=0) > 0)
  assert kept.tolist() == [True, False, False, True, True]
  assert int(layers["hidden_0/kernel"].n_pruned) == 2
  # With 20% the third smallest (cumulative exactly 0.20) goes too.
  _, layers = pruning.prune(params, 0.2)
  assert int(layers["hidden_0/kernel"].n_pruned) == 3
  np.testing.assert_array_equal(pruned["classifier"]["kernel"], params["classifier"]["kernel"])


def test_energy_rule_keeps_the_error_below_the_fraction():
  w = symmetric_stable(jax.random.key(0), (50, 400), 1.5)
  params = {"hidden_0": {"kernel": w}, "classifier": {"kernel": jnp.ones((400, 2))}}
  for f in (0.01, 0.1, 0.3):
    pruned, layers = pruning.prune(params, f)
    err2 = float(pruning.relative_error(params, pruned)) ** 2
    assert err2 <= f + 1e-6
    # ...and one more column would exceed it.
    n = int(layers["hidden_0/kernel"].n_pruned)
    sq = np.sort(np.asarray(jnp.sum(w**2, axis=0)))
    assert sq[: n + 1].sum() / sq.sum() > f


def test_count_rule_and_full_pruning():
  w = jnp.arange(1.0, 11.0)[None, :] * jnp.ones((3, 1))
  params = {"hidden_0": {"kernel": w}, "classifier": {"kernel": jnp.ones((10, 2))}}
  for f, expected in ((0.0, 0), (0.3, 3), (0.7, 7), (1.0, 10)):
    pruned, layers = pruning.prune(params, f, rule="count")
    assert int(layers["hidden_0/kernel"].n_pruned) == expected
    assert np.all(np.asarray(pruned["hidden_0"]["kernel"])[:, :expected] == 0)


def test_parameter_accounting_excludes_only_the_classifier():
  params = {
    "hidden_0": {"kernel": jnp.ones((4, 10))},
    "hidden_1": {"kernel": jnp.ones((10, 10))},
    "norm": {"scale": jnp.ones(10)},
    "classifier": {"kernel": jnp.ones((10, 3))},
  }
  _, layers = pruning.prune(params, 0.5, rule="count")
  # removed: 5 columns of 4 + 5 columns of 10 = 70, of 40 + 100 + 10 = 150.
  assert float(pruning.fraction_pruned(params, layers)) == pytest.approx(70 / 150)


def test_conv_filters_are_columns():
  k = jnp.ones((3, 3, 2, 4)) * jnp.array([1.0, 0.01, 2.0, 3.0])
  params = {
    "conv_0": {"kernel": jnp.ones((3, 3, 1, 2))},
    "conv_1": {"kernel": k},
    "classifier": {"kernel": jnp.ones((4, 2))},
  }
  # Filter squared norms ∝ 1, 1e-4, 4, 9: the two smallest hold 7% of the energy.
  pruned, layers = pruning.prune(params, 0.1)
  assert int(layers["conv_1/kernel"].n_pruned) == 2
  assert layers["conv_1/kernel"].weights_per_column == 18
  filter_norms = jnp.sqrt(jnp.sum(pruned["conv_1"]["kernel"] ** 2, axis=(0, 1, 2)))
  assert (np.asarray(filter_norms) > 0).tolist() == [False, False, True, True]
  assert "conv_0/kernel" not in layers  # the first conv is never pruned


def test_pruning_vmaps_over_seeds():
  ws = symmetric_stable(jax.random.key(1), (3, 20, 50), 1.2)
  params = {"hidden_0": {"kernel": ws}, "classifier": {"kernel": jnp.ones((3, 50, 2))}}
  batched = jax.vmap(lambda p: pruning.fraction_pruned(p, pruning.prune(p)[1]))(params)
  single = [
    float(pruning.fraction_pruned(p, pruning.prune(p)[1]))
    for p in ({"hidden_0": {"kernel": w}, "classifier": {"kernel": jnp.ones((50, 2))}} for w in ws)
  ]
  np.testing.assert_allclose(np.asarray(batched), single, rtol=1e-6)


def test_bad_pruning_arguments():
  with pytest.raises(ValueError, match="fraction must lie"):
    pruning.columns_to_prune(jnp.ones(3), 1.5)
  with pytest.raises(ValueError, match="rule must be"):
    pruning.columns_to_prune(jnp.ones(3), 0.1, rule="random")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_prune_refuses_non_finite_weights(bad):
  from htsgd_jax import prune

  kernel = np.ones((4, 6), np.float32)
  kernel[0, 2] = bad
  params = {"hidden_0": {"kernel": kernel}, "classifier": {"kernel": np.ones((6, 2))}}
  with pytest.raises(ValueError, match="hidden_0/kernel holds non-finite"):
    prune(params, 0.1)
