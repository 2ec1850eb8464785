"""htsgd_jax.columns: a column is one hidden unit's incoming weights; which layers have them."""

import jax.numpy as jnp
import numpy as np
import pytest

import htsgd_jax
from htsgd_jax import columns


def test_a_column_is_a_units_incoming_weights_a_filter_or_one_channel_pairs_kernel():
  dense = np.arange(12.0).reshape(3, 4)
  np.testing.assert_array_equal(columns.as_columns(dense), dense)  # kernel[:, j]
  conv = np.arange(3 * 3 * 2 * 5.0).reshape(3, 3, 2, 5)
  per_filter = columns.as_columns(conv, "filter")
  assert per_filter.shape == (18, 5)
  for j in range(5):  # column j is filter j: kernel[..., j]
    np.testing.assert_array_equal(per_filter[:, j], conv[..., j].ravel())
  per_kernel = columns.as_columns(conv, "kernel")
  assert per_kernel.shape == (9, 10)
  np.testing.assert_array_equal(per_kernel[:, 2 * 5 - 1], conv[:, :, 1, 4].ravel())


def test_a_bad_column_view_is_refused():
  with pytest.raises(ValueError, match="rank >= 2"):
    columns.columns_shape((5,))
  with pytest.raises(ValueError, match="conv_column must be 'filter'"):
    columns.as_columns(np.zeros((3, 3, 2, 2)), "row")


def test_unnamed_classifier_is_the_last_kernel_in_natural_order():
  params = {f"Dense_{i}": {"kernel": jnp.ones((4, 4))} for i in range(11)}
  mask = htsgd_jax.hidden_layer_mask(params)
  assert mask["Dense_10"]["kernel"] is False
  assert all(mask[f"Dense_{i}"]["kernel"] for i in range(10))
