"""Fine-tuning pruned networks: removed units stay removed, the rest recovers accuracy."""

import dataclasses

import jax
import numpy as np
import pytest

import htsgd_jax
from htsgd_jax import compression, models
from htsgd_jax.data import load_dataset
from htsgd_jax.training import TrainConfig, evaluate, train


@pytest.fixture(scope="module")
def pruned():
  ds = load_dataset("digits")
  cfg = TrainConfig(dataset="digits", width=64, lr=0.1, max_steps=200, eval_every=100,
                    batch_size=100, target_accuracy=None)  # fmt: skip
  runs = [train(dataclasses.replace(cfg, seed=s), ds, progress=False) for s in (1, 2)]
  model = models.FCN(width=64, num_classes=10)

  def apply(p, x):
    return model.apply({"params": p}, x)

  # 56 of 64 units go: accuracy drops far below the full network's.
  masked = [compression.without_units(r.params, 56, 64) for r in runs]
  return ds, apply, [r.params for r in runs], masked


def test_removed_units_stay_removed_and_accuracy_recovers(pruned):
  ds, apply, full, masked = pruned
  tuned = htsgd_jax.fine_tune(apply, masked, ds.x_train, ds.y_train, steps=200, learning_rate=0.1)
  for before, after in zip(masked, tuned):
    gone = np.all(np.asarray(before["hidden_0"]["kernel"]) == 0, axis=0)
    assert gone.sum() == 56
    kernel = np.asarray(after["hidden_0"]["kernel"])
    assert np.all(kernel[:, gone] == 0) and np.all(kernel[:, ~gone] != 0)
    # Its compact version is as small as before and computes the same logits.
    compact = htsgd_jax.compact_dense(after)
    assert compact.widths == {"hidden_0": 8}
    np.testing.assert_allclose(
      htsgd_jax.dense_apply(compact.params, ds.x_test), apply(after, ds.x_test), atol=1e-4
    )
  acc = lambda ps: [float(evaluate(apply, p, ds.x_test, ds.y_test)[1]) for p in ps]  # noqa: E731
  full_acc, pruned_acc, tuned_acc = acc(full), acc(masked), acc(tuned)
  for f, p, t in zip(full_acc, pruned_acc, tuned_acc):
    # Measured: 95.8 and 97.0 -> 67.2 and 56.2 pruned -> 95.8 and 95.6 fine-tuned.
    assert p < f - 10  # pruning hurt
    assert t > f - 3  # fine-tuning won nearly all of it back


def test_batched_runs_match_one_at_a_time(pruned):
  ds, apply, _, masked = pruned
  both = htsgd_jax.fine_tune(apply, masked, ds.x_train, ds.y_train, steps=20, learning_rate=0.1)
  for i, p in enumerate(masked):
    (alone,) = htsgd_jax.fine_tune(apply, [p], ds.x_train, ds.y_train, steps=20, learning_rate=0.1)
    for a, b in zip(jax.tree.leaves(alone), jax.tree.leaves(both[i])):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
  "kwargs",
  [dict(steps=-1), dict(batch_size=0), dict(learning_rate=float("nan")), dict(learning_rate=0.0)],
)
def test_bad_arguments_are_refused(pruned, kwargs):
  ds, apply, _, masked = pruned
  args = dict(steps=1, learning_rate=0.1, batch_size=10) | kwargs
  with pytest.raises(ValueError, match="fine_tune needs"):
    htsgd_jax.fine_tune(apply, masked, ds.x_train, ds.y_train, **args)
