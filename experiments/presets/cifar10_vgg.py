"""CIFAR-10, ``vgg11_wide`` (VGG-11, doubled channels, bias-free): noisy vs plain.

Needs CIFAR-10 prepared for TFDS and, realistically, a GPU::

  python -m experiments.reproduce --preset cifar10_vgg --data-dir DIR

Quick variant (2k training images, 2 seeds; slow on a CPU: tens of minutes)::

  python -m experiments.reproduce --preset cifar10_vgg:quick --data-dir DIR

Noise per filter (``conv_column="filter"``, the authors' ``--iterate_noise_filter``),
first convolution skipped. lr, batch size, σ and the target are our choices.
"""

import dataclasses

from experiments.presets import Experiment
from htsgd_jax.config import TrainConfig


def get_config(variant: str = "full") -> Experiment:
  noisy = TrainConfig(
    dataset="cifar10",
    model="vgg11_wide",
    noise_type=1,
    alpha=1.75,
    sigma=0.003,
    lr=0.01,
    batch_size=128,
    target_accuracy=100.0,
    eval_every=500,
    eval_batch_size=500,
    conv_column="filter",
    max_steps=200_000,
    converge_on="before_noise",
  )
  if variant == "quick":
    quick = dataclasses.replace(
      noisy, train_subset=2000, target_accuracy=90.0, max_steps=3000, eval_every=100
    )
    return Experiment("cifar10_vgg_quick", quick, seeds=(1, 2), notes=__doc__)
  return Experiment("cifar10_vgg", noisy, notes=__doc__)
