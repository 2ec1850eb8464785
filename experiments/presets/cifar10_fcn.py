"""CIFAR-10, FCN: noisy vs plain SGD.

Needs CIFAR-10 prepared for TFDS (no offline source ships it)::

  tfds build cifar10 --file_format=array_record --data_dir DIR   # with a network
  python -m experiments.reproduce --preset cifar10_fcn --data-dir DIR

Quick variant (10k training images, width 1000, 3 seeds)::

  python -m experiments.reproduce --preset cifar10_fcn:quick --data-dir DIR

Hyperparameters follow the MNIST command of the authors' README (type 1,
α 1.75, σ 0.003, lr 0.01, batch 5000, depth 2); width, target accuracy and
step budget are our choices, not checked against the paper's appendix.
"""

import dataclasses

from experiments.presets import Experiment
from htsgd_jax.config import TrainConfig


def get_config(variant: str = "full") -> Experiment:
  noisy = TrainConfig(
    dataset="cifar10",
    model="fcn",
    width=5000,
    depth=2,
    noise_type=1,
    alpha=1.75,
    sigma=0.003,
    lr=0.01,
    batch_size=5000,
    target_accuracy=95.0,
    eval_every=100,
    max_steps=100_000,
    converge_on="before_noise",
  )
  if variant == "quick":
    quick = dataclasses.replace(
      noisy,
      width=1000,
      batch_size=500,
      lr=0.05,
      target_accuracy=60.0,
      train_subset=10_000,
      max_steps=5000,
      eval_every=50,
    )
    return Experiment("cifar10_fcn_quick", quick, seeds=(1, 2, 3), notes=__doc__)
  return Experiment("cifar10_fcn", noisy, notes=__doc__)
