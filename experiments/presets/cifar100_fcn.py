"""CIFAR-100, FCN: noisy vs plain SGD.

Needs CIFAR-100 prepared for TFDS::

  tfds build cifar100 --file_format=array_record --data_dir DIR   # with a network
  python -m experiments.reproduce --preset cifar100_fcn --data-dir DIR

Quick variant::

  python -m experiments.reproduce --preset cifar100_fcn:quick --data-dir DIR

The ``cifar10_fcn`` setting on CIFAR-100, with lower target accuracies (100
classes: 90% full, 40% quick); the targets are our choices.
"""

import dataclasses

from experiments.presets import Experiment, cifar10_fcn


def get_config(variant: str = "full") -> Experiment:
  base = cifar10_fcn.get_config(variant)
  noisy = dataclasses.replace(
    base.noisy, dataset="cifar100", target_accuracy=40.0 if variant == "quick" else 90.0
  )
  return dataclasses.replace(
    base, name=base.name.replace("cifar10", "cifar100"), noisy=noisy, notes=__doc__
  )
