"""htsgd_jax.checkpoints: a program's whole state, PRNG keys too, saved and restored exactly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from htsgd_jax import checkpoints, records


def _state():
  return {
    "w": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3),
    "key": jax.random.key(7),
    "step": jnp.int32(3),
  }


def test_a_restored_state_goes_on_as_the_saved_one_would(tmp_path):
  state = _state()
  checkpoints.save(tmp_path, state, {"runs": ["a"]}, step=10)
  checkpoints.save(tmp_path, state, {"runs": ["a"]}, step=20)
  assert [p.name for p in tmp_path.glob("state-*.npz")] == ["state-20.npz"]  # only the newest
  restored, meta = checkpoints.load(tmp_path, jax.eval_shape(lambda: state))
  assert meta["step"] == 20 and meta["runs"] == ["a"]
  np.testing.assert_array_equal(restored["w"], state["w"])
  assert restored["step"].dtype == jnp.int32
  # The key is a key again, and draws what the saved one draws.
  np.testing.assert_array_equal(
    jax.random.normal(restored["key"], (4,)), jax.random.normal(state["key"], (4,))
  )


def test_a_checkpoint_of_another_program_or_a_damaged_one_is_refused_naming_it(tmp_path):
  state = _state()
  checkpoints.save(tmp_path, state, {}, step=1)
  with pytest.raises(records.DamagedFileError, match="another program.*start the training over"):
    checkpoints.load(tmp_path, {"w": state["w"]})
  other = dict(state, w=jnp.zeros((3, 2)))
  with pytest.raises(records.DamagedFileError, match=r"array \d is float32\[2, 3\]"):
    checkpoints.load(tmp_path, jax.eval_shape(lambda: other))
  (tmp_path / "state-1.npz").write_bytes(b"not a zip")
  with pytest.raises(records.DamagedFileError, match="state-1.npz is damaged"):
    checkpoints.load(tmp_path, jax.eval_shape(lambda: state))
  checkpoints.clear(tmp_path)
  assert not tmp_path.exists()
