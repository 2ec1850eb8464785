"""CIFAR-100, FCN: noisy vs plain SGD.

Needs CIFAR-100 prepared for TFDS::

  tfds build cifar100 --file_format=array_record --data_dir DIR   # with a network
  python -m experiments.reproduce --preset cifar100_fcn --data-dir DIR

Quick variant::

  python -m experiments.reproduce --preset cifar100_fcn:quick --data-dir DIR

Same optimiser settings as ``cifar10_fcn``; the target accuracy is lower
(100 classes). Width, target and step budget are our choices.
"""

from experiments.presets import Experiment
from htsgd_jax.train import TrainConfig


def get_config(variant: str = "full") -> Experiment:
  noisy = TrainConfig(dataset="cifar100", model="fcn", width=5000, depth=2, noise_type=1,
                      alpha=1.75, sigma=0.003, lr=0.01, batch_size=5000, target_accuracy=90.0,
                      eval_every=100, max_steps=100_000)
  if variant == "quick":
    return Experiment("cifar100_fcn_quick", noisy.__class__(**(noisy.to_dict() | dict(
        width=1000, batch_size=500, lr=0.05, target_accuracy=40.0, train_subset=10_000,
        max_steps=5000, eval_every=50))), seeds=(1, 2, 3), notes=__doc__)
  return Experiment("cifar100_fcn", noisy, notes=__doc__)
