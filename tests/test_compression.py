"""htsgd_jax.compression: the search for the most units a network can lose at a target accuracy."""

import numpy as np

from htsgd_jax import compression, pruning


def _exhaustive(apply, params, ds):
  """Accuracy with k units removed, for every k: the brute force the search must agree with."""
  out = []
  for k in range(49):
    pruned, _ = pruning.prune(params, k / 48, "count")  # independent of without_units
    logits = apply(pruned, ds.x_test)
    out.append(100 * float(np.mean(np.argmax(logits, -1) == ds.y_test)))
  return np.asarray(out)


def test_search_finds_the_first_failure_to_one_unit(trained_digits):
  ds, apply, params = trained_digits
  curves = [_exhaustive(apply, p, ds) for p in params]
  targets = [[c[0] - 1.0, c[0] - 10.0] for c in curves]
  # A grid of every unit: the search is then the exhaustive definition.
  fine = compression.search_prunable(
    apply, params, ds.x_test, ds.y_test, targets, grid=tuple(np.arange(49) / 48)
  )
  found = compression.search_prunable(apply, params, ds.x_test, ds.y_test, targets)
  off_grid = []
  for i, curve in enumerate(curves):
    np.testing.assert_allclose(found.curve[i], curve[found.grid_units], atol=1e-4)
    for t in range(2):
      fails = np.flatnonzero(curve < targets[i][t] - 1e-4)
      assert fine.units[i, t] == (fails[0] - 1 if fails.size else 48)
      k = found.units[i, t]
      # Grid and bisection: k passes, k + 1 fails, and no grid point up to k fails.
      assert curve[k] >= targets[i][t] - 1e-4 and np.isclose(
        found.accuracy[i, t], curve[k], atol=1e-4
      )
      assert k == 48 or curve[k + 1] < targets[i][t] + 1e-4
      assert np.all(curve[found.grid_units[found.grid_units <= k]] >= targets[i][t] - 1e-4)
      off_grid.append(k not in found.grid_units)
  assert any(off_grid)  # searched between grid points, not read off the grid
  # Targets may be derived from the unpruned accuracies, which the grid's first point measures.
  seen = []
  derived = compression.search_prunable(
    apply, params, ds.x_test, ds.y_test, lambda acc: seen.append(acc) or found.units * 0 + 50.0
  )
  np.testing.assert_array_equal(seen[0], found.curve[:, 0])
  assert derived.units.shape == found.units.shape
  # A target above the unpruned accuracy is missed: -1.
  missed = compression.search_prunable(apply, params, ds.x_test, ds.y_test, [[101.0], [101.0]])
  assert (missed.units == -1).all()
