"""MNIST, VGG-11 (the ``vgg11_wide`` shape, channels scaled): noisy vs plain SGD.

The authors' CNN experiment (``vgg11_wide`` on CIFAR-10, one α-stable scalar
per filter, whole filters pruned) on data this machine has: MNIST padded to
32×32 with background (``mnist32``), so that VGG-11's five 2×2 poolings end
at 1×1 as on CIFAR; 3×3 bias-free convolutions, ReLU, max-pooling, global
average pooling, one classifier (:func:`htsgd_jax.models.vgg11_channels`).
Noise type 1 per filter (``conv_column="filter"``, the authors'
``--iterate_noise_filter``), first convolution untouched, convergence judged
before the step's noise, as the authors do. Pruning removes whole filters
by the 10% energy rule (first convolution and classifier excluded).

Quick variant (width 8: channels 8–64, 147k convolution weights; 10k
training images; 5 seeds per arm; 30 min on 2 CPU cores, or one arm per
job, the noisy one 14 min; ``results/mnist_vgg_quick`` is the first
command's)::

  python -m experiments.reproduce --preset mnist_vgg:quick
  python -m experiments.reproduce --preset mnist_vgg:quick --arms noisy
  python -m experiments.reproduce --preset mnist_vgg:quick --report-only

Measured (2026-12-04, 2-core CPU): plain SGD reaches 99% in 800–1300 steps
(97.3% test) and the 10% rule removes 10.7% of its convolution weights at a
cost of 2.8 points. The noisy arm reaches 99% in 1 seed of 5 (step 2100;
11.9% pruned at a cost of 0.1 point); kicks send the others to chance: two
recover part way by the cap (94.4%, 79.5%), one stays there, one diverges.

At equal accuracy (``experiments.compare``; 3 strengths a method and one tuning
seed, to fit 2 CPU cores; 95 min on 2 cores, 2026-12-05;
``results/compare_mnist_vgg_quick``)::

  python -m experiments.compare --preset mnist_vgg:quick \
      --methods gaussian type1 type2 group_lasso --tuning-seeds 101 --fine-tune-steps 300

no method keeps significantly fewer parameters than plain SGD's 89% within 1
point of its test accuracy (type 2 85.5%, group lasso 87.1%, p = 0.23 each);
type 1's two converged runs keep 66% and 69%, its other three miss the target.

Full variant (width 64: channels 64–512, the full 60k images, a 99.9%
target; a GPU's work, not run here)::

  python -m experiments.reproduce --preset mnist_vgg

float32: at these widths XLA:CPU's bfloat16 convolutions are no faster
(``python -m benchmarks --only cnn``). lr, batch size and the targets are our
choices.

σ 0.001 was chosen by measurement, with ``sweep --tune sigma`` on the quick
variant (seed 101, 20% of its training images held out; 2026-12-04, 2-core
CPU; ``results/mnist_vgg_sigma/tuning.md``)::

  python -m experiments.sweep --preset mnist_vgg:quick --seeds 101 \
      --sigmas 0.00003 0.0001 0.0003 0.001 --tune sigma --out results/mnist_vgg_sigma

Plain SGD reaches 99% train accuracy at step 900 and loses 4.7% of its
hidden filters at equal validation accuracy (within 1 point); type 1 at σ
0.001 needs 3000 steps (a kick sends it to chance at step 900; it recovers)
and loses 23.4%, the most of the grid (3e-05: 6.2%, 1e-04: 12.5%, 3e-04:
6.2%). Larger σ does not train: at 0.003 and 0.01 the network sat at chance
(9.95%) from step 100 to 1600, at 0.03 and 0.1 it diverged within 100 steps.
One scalar per filter moves all of its 9·c_in weights together: on ReLU
inputs, which are never negative, a large kick acts like a large bias.
"""

import dataclasses

from experiments.presets import Experiment
from htsgd_jax.config import TrainConfig

SIGMA = 0.001


def get_config(variant: str = "full") -> Experiment:
  noisy = TrainConfig(
    dataset="mnist32",
    model="vgg11",
    width=64,
    noise_type=1,
    alpha=1.75,
    sigma=SIGMA,
    lr=0.05,
    batch_size=128,
    target_accuracy=99.9,
    eval_every=500,
    max_steps=50_000,
    conv_column="filter",
    converge_on="before_noise",
  )
  if variant == "quick":
    quick = dataclasses.replace(
      noisy, width=8, train_subset=10_000, target_accuracy=99.0, max_steps=4000, eval_every=100
    )
    return Experiment(
      "mnist_vgg_quick",
      quick,
      notes=__doc__,
      # compare: 3 strengths a method, where an FCN preset has 5, to fit 2 CPU cores.
      sigma_factors=(0.3, 1.0, 3.0),
      group_lasso_grid=(0.001, 0.003, 0.01),
    )
  return Experiment("mnist_vgg", noisy, notes=__doc__)
