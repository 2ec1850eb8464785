"""Benchmarks: samplers, step overhead, loop throughput, batched seeds, mixed precision.

  python -m benchmarks                    # all but time-to-result, ~6 min on 2 cores
  python -m benchmarks --only sampler step
  python -m benchmarks --only mixed       # float32 vs bfloat16 compute at the paper's scale
  python -m benchmarks --only cnn         # the CNN step and its convolutions, both dtypes
  python -m benchmarks --time-to-result   # adds the quick reproduction (~5 min)
  python -m benchmarks --json results/bench.json

On a GPU host install the accelerator extra (``pip install -e ".[cuda12]"``, or
``[tpu]``) and run the same command; the device kind is recorded in the output,
and the training loop and batched seeds report run-steps per second (runs ×
SGD steps per second), which compare across CPUs, GPUs and TPUs. Every figure is
the median of ``--repeats`` timed runs after one warm-up (compilation
excluded), reported with min and max; the sampler and ``jax.random.normal``
alternate run by run (``4 * --repeats`` runs each, at least 20) so that their
ratio is measured under one machine load.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.timing import timed, timed_interleaved
from htsgd_jax import compact, models, noise, stable
from htsgd_jax.data import load_dataset
from htsgd_jax.training import TrainConfig, Trainer


def machine() -> dict:
  return dict(
    cpu_count=os.cpu_count(),
    platform=platform.platform(),
    processor=platform.processor() or platform.machine(),
    backend=jax.default_backend(),
    devices=[d.device_kind for d in jax.local_devices()],
    jax=jax.__version__,
  )


def bench_sampler(repeats: int) -> list[dict]:
  from scipy.stats import levy_stable

  rows = []
  for size in (10_000, 1_000_000):
    key = jax.random.key(0)
    ours = jax.jit(
      lambda k: stable.symmetric_stable(k, (size,), 1.75),
    )
    normal = jax.jit(lambda k: jax.random.normal(k, (size,)))
    pair = timed_interleaved(
      dict(ours=lambda: ours(key), normal=lambda: normal(key)), max(4 * repeats, 20)
    )
    t_ours, t_norm = pair["ours"], pair["normal"]
    scipy_size = min(size, 100_000)  # scipy is slow; its rate does not depend on size
    t_scipy = timed(
      lambda: levy_stable.rvs(1.75, 0, size=scipy_size, random_state=0), max(repeats // 2, 1)
    )
    rows.append(
      dict(
        bench="sampler",
        size=size,
        ours=t_ours,
        normal=t_norm,
        scipy=t_scipy,
        ours_per_s=size / t_ours["median"],
        scipy_per_s=scipy_size / t_scipy["median"],
        speedup_vs_scipy=(size / t_ours["median"]) / (scipy_size / t_scipy["median"]),
        ratio_to_normal=t_ours["median"] / t_norm["median"],
      )
    )
  return rows


def _ms_spread(t: dict, decimals: int) -> str:
  """A timing's median and range in milliseconds: ``12.3 ms [10.1, 15.5]``."""
  median, low, high = (f"{t[k] * 1e3:.{decimals}f}" for k in ("median", "min", "max"))
  return f"{median} ms [{low}, {high}]"


def _line_sampler(r: dict) -> str:
  return (
    f"sampler  n={r['size']:>9,}  ours {r['ours_per_s']:.3g}/s  scipy {r['scipy_per_s']:.3g}/s"
    f"  ({r['speedup_vs_scipy']:.0f}x scipy)"
    f"  time vs jax.random.normal {r['ratio_to_normal']:.2f}x"
    f" (target <= 3x)"
    f"  [ours min/med/max {r['ours']['min'] * 1e3:.2f}/{r['ours']['median'] * 1e3:.2f}"
    f"/{r['ours']['max'] * 1e3:.2f} ms]"
  )


def _train_step(model, x, y, noise_type: int):
  """A jitted SGD step (type ``noise_type`` noise, 0 = plain) of ``model`` on one batch."""
  params = model.init(jax.random.key(0), x[:1])["params"]
  tx = optax.sgd(0.01) if noise_type == 0 else noise.noisy_sgd(0.01, 1.75, 0.003, noise_type, key=0)
  state = tx.init(params)

  @jax.jit
  def step(params, state):
    def loss(p):
      return optax.softmax_cross_entropy_with_integer_labels(
        model.apply({"params": p}, x), y
      ).mean()

    updates, state = tx.update(jax.grad(loss)(params), state, params)
    return optax.apply_updates(params, updates), state

  return lambda: step(params, state)


def _mnist_step(noise_type: int, width: int, batch: int, dtype: str = "float32"):
  model = models.FCN(width=width, depth=2, num_classes=10, dtype=dtype)
  x = jax.random.normal(jax.random.key(1), (batch, 28, 28, 1))
  return _train_step(model, x, jnp.arange(batch) % 10, noise_type)


def bench_step(repeats: int, width: int = 2048, batch: int = 1000) -> list[dict]:
  rows, base = [], None
  for t in (0, 1, 2, 3):
    fn = _mnist_step(t, width, batch)
    r = timed(fn, repeats)
    base = base or r["median"]
    rows.append(
      dict(
        bench="step",
        noise_type=t,
        width=width,
        batch=batch,
        time=r,
        overhead=r["median"] / base - 1,
      )
    )
  # The floor: the same step's matrix multiplications alone (forward + two backward).
  x = jax.random.normal(jax.random.key(1), (batch, 784))
  w1 = jax.random.normal(jax.random.key(2), (784, width))
  w2 = jax.random.normal(jax.random.key(3), (width, 10))

  @jax.jit
  def matmuls(x, w1, w2):
    h = x @ w1
    o = h @ w2
    g_h = o @ w2.T
    return o, h.T @ o, x.T @ g_h, g_h

  floor = timed(lambda: matmuls(x, w1, w2), repeats)
  flops = 2 * batch * (784 * width * 2 + width * 10 * 2)
  rows.append(
    dict(
      bench="matmul_floor",
      width=width,
      batch=batch,
      time=floor,
      gflops=flops / floor["median"] / 1e9,
      plain_step_over_floor=base / floor["median"],
    )
  )
  # The whole training loop (lax.scan of noisy steps, minibatch gathers, masking),
  # on MNIST-shaped data: 200 steps with one full evaluation at the end.
  from htsgd_jax.data import Dataset

  rng = np.random.default_rng(0)
  ds = Dataset(
    "synthetic",
    rng.normal(size=(20_000, 28, 28, 1)).astype(np.float32),
    rng.integers(0, 10, 20_000).astype(np.int32),
    rng.normal(size=(1000, 28, 28, 1)).astype(np.float32),
    rng.integers(0, 10, 1000).astype(np.int32),
    10,
    "numpy",
  )
  steps = 200
  for t in (0, 1):
    cfg = TrainConfig(
      dataset="synthetic",
      width=width,
      batch_size=batch,
      lr=0.01,
      noise_type=t,
      sigma=0.003 if t else 0.0,
      max_steps=steps,
      eval_every=steps,
      target_accuracy=None,
      eval_batch_size=batch,
    )
    trainer = Trainer([cfg], ds)
    loop = timed(lambda: trainer.run(progress=False)[0].params, max(repeats // 2, 1))
    per_step = loop["median"] / steps
    rows.append(
      dict(
        bench="loop",
        noise_type=t,
        width=width,
        batch=batch,
        steps=steps,
        time=loop,
        per_step=per_step,
        over_floor=per_step / floor["median"],
        run_steps_per_s=1 / per_step,
      )
    )
  return rows


def _line_step(r: dict) -> str:
  return (
    f"step     type {r['noise_type']} (0 = plain)  n={r['width']} batch={r['batch']}"
    f"  {_ms_spread(r['time'], 1)}"
    f"  overhead {100 * r['overhead']:+.1f}%"
  )


def _line_matmul_floor(r: dict) -> str:
  t = r["time"]
  return (
    f"floor    matmuls only  {t['median'] * 1e3:.1f} ms ({r['gflops']:.0f} GFLOP/s)"
    f"  plain step / floor = {r['plain_step_over_floor']:.2f}"
  )


def _line_loop(r: dict) -> str:
  return (
    f"loop     type {r['noise_type']} training loop, {r['steps']} steps + evaluation:"
    f" {r['per_step'] * 1e3:.1f} ms/step = {r['over_floor']:.2f}x the matmul floor,"
    f" {r['run_steps_per_s']:.3g} run-steps/s"
  )


# The products of one step at the authors' MNIST setting: (lhs shape, rhs shape, contracting
# dims, the dtypes whose training step runs it). The weight gradient x^T.g runs in float32
# contracted over the gathered batch's axis, in bfloat16 from the batch laid out transposed
# and contiguous (x_t, htsgd_jax.models.transposed_input_product).
PRODUCTS = {
  "forward x.W": (("batch", 784), (784, "width"), ((1,), (0,)), ("float32", "bfloat16")),
  "weight gradient x^T.g, over x's batch": (
    ("batch", 784),
    ("batch", "width"),
    ((0,), (0,)),
    ("float32",),
  ),
  "weight gradient x_t.g, x_t contiguous": (
    (784, "batch"),
    ("batch", "width"),
    ((1,), (0,)),
    ("bfloat16",),
  ),
}


def _program_steps(cfg: TrainConfig, input_shape: tuple[int, ...], steps: int):
  """The training program's ``steps`` SGD steps of ``cfg``, timed whole.

  On random data of ``input_shape`` and 12 batches: gathers, products or
  convolutions, the noise and the update, exactly as in training, without
  the evaluation.
  """
  from htsgd_jax.data import Dataset

  cfg = dataclasses.replace(cfg, eval_every=steps, train_subset=None)
  rng = np.random.default_rng(0)
  n = 12 * cfg.batch_size
  ds = Dataset(
    "synthetic",
    rng.normal(size=(n, *input_shape)).astype(np.float32),
    rng.integers(0, 10, n).astype(np.int32),
    rng.normal(size=(10, *input_shape)).astype(np.float32),
    rng.integers(0, 10, 10).astype(np.int32),
    10,
    "numpy",
  )
  trainer = Trainer([cfg], ds)
  data = trainer.placed_data()
  seeds, hyper = trainer.per_run_inputs()
  states = trainer.program.init(seeds, hyper)
  return lambda: trainer.program.steps(states, hyper, jnp.int32(0), data)


def _mnist_program(width: int, batch: int, dtype: str, steps: int):
  """The program's steps at the authors' MNIST setting (the preset's type 1 noise, before-noise
  convergence), at ``width``, ``batch`` and compute ``dtype``."""
  from experiments.presets import get_experiments

  (exp,) = get_experiments("mnist_fcn")
  cfg = dataclasses.replace(exp.noisy, width=width, batch_size=batch, compute_dtype=dtype)
  return _program_steps(cfg, (28, 28, 1), steps)


def _in_a_loop(fn, args, steps: int):
  """``fn(*args)`` ``steps`` times inside one ``scan``, as a training program runs it.

  The first argument is carried (and touched) so that nothing is hoisted out
  of the loop; outputs are reduced inside it, so no fresh buffer per call.
  """

  def body(first, _):
    out = fn(first, *args[1:])
    return first + (0 * out.ravel()[0]).astype(first.dtype), None

  loop = jax.jit(lambda first: jax.lax.scan(body, first, None, length=steps)[0])
  return lambda: loop(args[0])


def bench_cnn(repeats: int) -> list[dict]:
  """The CNN step of ``mnist_vgg:quick`` and VGG11-wide on CIFAR-shaped input, per dtype.

  Steps are the training program's own (noise per filter, convergence judged
  before it). Each convolution's forward pass, and the first pruned layer's
  kernel gradient (autodiff's convolution against the im2col product the
  models use), are timed inside a loop, as the program runs them. A step's
  FLOPs count each convolution three times (forward, input and kernel
  gradients).
  """
  from experiments.presets import get_experiments

  rows = []
  (exp,) = get_experiments("mnist_vgg:quick")
  cifar = dataclasses.replace(exp.noisy, model="vgg11_wide", dataset="cifar10")
  settings = (
    ("mnist_vgg:quick", exp.noisy, (32, 32, 1), models.vgg11_channels(exp.noisy.width), 10),
    ("vgg11_wide, CIFAR-shaped", cifar, (32, 32, 3), models.VGG11_WIDE_CHANNELS, 1),
  )
  for name, cfg, shape, channels, steps in settings:
    layers = [
      (layer, h, c_in, c_out, 2 * cfg.batch_size * h * w * 9 * c_in * c_out)
      for layer, h, w, c_in, c_out in compact.conv_layers(channels, shape)
    ]
    rows += _cnn_steps(name, cfg, shape, layers, steps, repeats)
    if steps > 1:  # the small network: its convolutions one by one too
      rows += _cnn_convs(name, layers, cfg.batch_size, repeats)
      rows += _cnn_kernel_gradients(name, layers, cfg.batch_size, repeats)
  return rows


def _cnn_steps(name, cfg, shape, layers, steps: int, repeats: int) -> list[dict]:
  """``steps`` of the training program per dtype; GFLOP/s from the layers' FLOPs."""
  flops = sum(layer[-1] for layer in layers)
  times = timed_interleaved(
    {
      d: _program_steps(dataclasses.replace(cfg, compute_dtype=d), shape, steps)
      for d in models.COMPUTE_DTYPES
    },
    max(repeats // (1 if steps > 1 else 2), 2),
  )
  return [
    dict(
      bench="cnn_step",
      setting=name,
      dtype=d,
      batch=cfg.batch_size,
      time={k: v / steps for k, v in times[d].items()},
      gflops=3 * flops / (times[d]["median"] / steps) / 1e9,
      speedup=times["float32"]["median"] / times[d]["median"],
    )
    for d in models.COMPUTE_DTYPES
  ]


def _cnn_convs(name, layers, batch: int, repeats: int) -> list[dict]:
  """Every convolution's forward pass per dtype, 10 in a loop."""
  rows = []
  for layer, hw, c_in, c_out, layer_flops in layers:
    x = jax.random.normal(jax.random.key(1), (batch, hw, hw, c_in))
    k = jax.random.normal(jax.random.key(2), (3, 3, c_in, c_out)) * 0.1
    convs = {
      d: _in_a_loop(
        models.conv_with_matmul_gradient, (x.astype(d), k.astype(d), (1, 1), "SAME"), 10
      )
      for d in models.COMPUTE_DTYPES
    }
    t = timed_interleaved(convs, max(repeats, 3))
    for d in models.COMPUTE_DTYPES:
      rows.append(
        dict(
          bench="cnn_conv",
          setting=name,
          layer=f"{layer} {hw}x{hw} {c_in}->{c_out}",
          dtype=d,
          time=t[d]["median"] / 10,
          gflops=layer_flops / (t[d]["median"] / 10) / 1e9,
        )
      )
  return rows


def _cnn_kernel_gradients(name, layers, batch: int, repeats: int) -> list[dict]:
  """The first pruned layer's kernel gradient: autodiff's convolution vs the im2col product."""
  _, hw, c_in, c_out, layer_flops = layers[1]
  x = jax.random.normal(jax.random.key(1), (batch, hw, hw, c_in))
  k = jax.random.normal(jax.random.key(2), (3, 3, c_in, c_out)) * 0.1
  g = jax.random.normal(jax.random.key(3), (batch, hw, hw, c_out))

  def kernel_gradient(conv):
    return lambda x, g: jax.vjp(lambda k: conv(x, k), k)[1](g)[0]

  def autodiff(x, k):
    return jax.lax.conv_general_dilated(
      x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )

  def im2col(x, k):
    return models.conv_with_matmul_gradient(x, k, (1, 1), "SAME")

  t = timed_interleaved(
    {
      n: _in_a_loop(kernel_gradient(c), (x, g), 10)
      for n, c in (("autodiff conv", autodiff), ("im2col product", im2col))
    },
    max(repeats, 3),
  )
  return [
    dict(
      bench="cnn_conv",
      setting=name,
      layer=f"conv_1 kernel gradient, {n}",
      dtype="float32",
      time=t[n]["median"] / 10,
      gflops=layer_flops / (t[n]["median"] / 10) / 1e9,
    )
    for n in t
  ]


def _line_cnn_step(r: dict) -> str:
  return (
    f"cnn      {r['setting']} step, batch {r['batch']}, {r['dtype']:8s}"
    f"  {_ms_spread(r['time'], 0)}"
    f" ({r['gflops']:.0f} GFLOP/s)  {r['speedup']:.2f}x float32"
  )


def _line_cnn_conv(r: dict) -> str:
  return (
    f"cnn      {r['setting']} {r['layer']:38s} {r['dtype']:8s}"
    f"  {r['time'] * 1e3:.2f} ms ({r['gflops']:.0f} GFLOP/s)"
  )


def bench_mixed_precision(repeats: int, width: int = 5000, batch: int = 5000) -> list[dict]:
  """float32 vs bfloat16 compute: the authors' MNIST step, its products, a VGG11-wide step.

  The step is the training program's own (12 steps, one epoch, timed whole);
  each pair is timed in alternation (one machine load). A bfloat16 product
  takes bf16 inputs and accumulates and returns float32, as the models do.
  The time outside the products is the step less the products its dtype runs.
  """
  rows = []
  sizes = dict(batch=batch, width=width)
  steps_timed = 12
  step_flops = 2 * batch * (784 * width * 2 + width * 10 * 3)  # forward, x^T.g, classifier's 3
  steps = timed_interleaved(
    {d: _mnist_program(width, batch, d, steps_timed) for d in models.COMPUTE_DTYPES},
    max(repeats, 3),
  )
  product_rows = []
  for name, (lhs, rhs, contract, used_by) in PRODUCTS.items():
    lhs, rhs = (tuple(sizes.get(n, n) for n in shape) for shape in (lhs, rhs))
    a = jax.random.normal(jax.random.key(1), lhs)
    b = jax.random.normal(jax.random.key(2), rhs)
    flops = 2 * np.prod(lhs) * rhs[1 - contract[1][0]]

    def product(dtype, a=a, b=b, contract=contract):
      # Timed as the step runs it: inside a loop, so that the output's buffer is allocated
      # once (a fresh 100 MB buffer per call costs ~30 ms of page faults here). Each
      # product's input depends on the last one's output, so none is hoisted or dropped.
      def body(a, _):
        out = jax.lax.dot_general(a, b, (contract, ((), ())), preferred_element_type=jnp.float32)
        return a.at[0, 0].add((0 * out[0, 0]).astype(a.dtype)), None

      fn = jax.jit(lambda a: jax.lax.scan(body, a, None, length=steps_timed)[0])
      a = a.astype(dtype)
      b = b.astype(dtype)
      return lambda: fn(a)

    times = timed_interleaved({d: product(d) for d in models.COMPUTE_DTYPES}, max(repeats, 3))
    for d in models.COMPUTE_DTYPES:
      per_product = {k: v / steps_timed for k, v in times[d].items()}
      product_rows.append(
        dict(
          bench="mixed_product",
          product=name,
          dtype=d,
          in_step=d in used_by,
          time=per_product,
          gflops=flops / per_product["median"] / 1e9,
        )
      )
  for d in models.COMPUTE_DTYPES:
    per_step = steps[d]["median"] / steps_timed
    in_products = sum(r["time"]["median"] for r in product_rows if r["dtype"] == d and r["in_step"])
    rows.append(
      dict(
        bench="mixed_step",
        model="fcn",
        dtype=d,
        width=width,
        batch=batch,
        time={k: v / steps_timed for k, v in steps[d].items()},
        gflops=step_flops / per_step / 1e9,
        speedup=steps["float32"]["median"] / steps[d]["median"],
        products_s=in_products,
        outside_products_s=per_step - in_products,
      )
    )
  rows += product_rows
  # VGG11-wide on CIFAR-shaped inputs: convolutions instead of one big product.
  x = jax.random.normal(jax.random.key(1), (128, 32, 32, 3))
  y = jnp.arange(128) % 10
  vgg = timed_interleaved(
    {d: _train_step(models.VGG11Wide(dtype=d), x, y, 1) for d in models.COMPUTE_DTYPES},
    max(repeats // 2, 2),
  )
  for d in models.COMPUTE_DTYPES:
    rows.append(
      dict(
        bench="mixed_step",
        model="vgg11_wide",
        dtype=d,
        batch=128,
        time=vgg[d],
        speedup=vgg["float32"]["median"] / vgg[d]["median"],
      )
    )
  return rows


def _line_mixed_step(r: dict) -> str:
  shape = f"n={r['width']} batch={r['batch']}" if r["model"] == "fcn" else f"batch={r['batch']}"
  rate = f" ({r['gflops']:.0f} GFLOP/s)" if "gflops" in r else ""
  split = (
    f"; products {r['products_s'] * 1e3:.0f} ms, outside them"
    f" {r['outside_products_s'] * 1e3:.0f} ms"
    if "products_s" in r
    else ""
  )
  return (
    f"mixed    {r['model']} step {shape} type 1, {r['dtype']:8s}"
    f"  {_ms_spread(r['time'], 0)}{rate}"
    f"  {r['speedup']:.2f}x float32{split}"
  )


def _line_mixed_product(r: dict) -> str:
  return (
    f"mixed    product {r['product']:40s} {r['dtype']:8s}"
    f"  {r['time']['median'] * 1e3:.0f} ms ({r['gflops']:.0f} GFLOP/s)"
    + ("  [in the step]" if r["in_step"] else "")
  )


def bench_seeds(repeats: int) -> list[dict]:
  ds = load_dataset("digits")
  rows = []
  for width in (64, 1024):
    cfgs = [
      TrainConfig(
        dataset="digits",
        width=width,
        lr=0.1,
        batch_size=100,
        seed=s,
        sigma=0.01,
        noise_type=2,
        max_steps=100,
        eval_every=100,
        target_accuracy=None,
      )
      for s in range(1, 9)
    ]
    batched = Trainer(cfgs, ds)
    singles = [Trainer([c], ds) for c in cfgs]
    t_b = timed(lambda: [r.params for r in batched.run(progress=False)], repeats)
    t_s = timed(lambda: [t.run(progress=False)[0].params for t in singles], repeats)
    rows.append(
      dict(
        bench="seeds",
        width=width,
        seeds=len(cfgs),
        batched=t_b,
        sequential=t_s,
        speedup=t_s["median"] / t_b["median"],
        run_steps_per_s=len(cfgs) * cfgs[0].max_steps / t_b["median"],
      )
    )
  return rows


def _line_seeds(r: dict) -> str:
  return (
    f"seeds    {r['seeds']} seeds n={r['width']}: batched {r['batched']['median']:.2f} s,"
    f" sequential {r['sequential']['median']:.2f} s  ({r['speedup']:.1f}x),"
    f" {r['run_steps_per_s']:.3g} run-steps/s batched"
  )


def bench_time_to_result() -> list[dict]:
  import tempfile

  with tempfile.TemporaryDirectory() as out:
    start = time.perf_counter()
    subprocess.run(
      [
        sys.executable,
        "-m",
        "experiments.reproduce",
        "--preset",
        "quick",
        "--out",
        out,
        "--no-progress",
      ],
      check=True,
      capture_output=True,
    )
    return [dict(bench="time_to_result", preset="quick", seconds=time.perf_counter() - start)]


def _line_time_to_result(r: dict) -> str:
  return f"result   quick reproduction (ECG5000 + MNIST, 12 runs): {r['seconds']:.0f} s"


def table(rows: list[dict]) -> str:
  """One line per row, each written by the formatter of the benchmark that made it."""
  return "\n".join(LINES[r["bench"]](r) for r in rows)


LINES = dict(
  sampler=_line_sampler,
  step=_line_step,
  matmul_floor=_line_matmul_floor,
  loop=_line_loop,
  seeds=_line_seeds,
  mixed_step=_line_mixed_step,
  mixed_product=_line_mixed_product,
  cnn_step=_line_cnn_step,
  cnn_conv=_line_cnn_conv,
  time_to_result=_line_time_to_result,
)


BENCHES = dict(
  sampler=bench_sampler,
  step=bench_step,
  seeds=bench_seeds,
  mixed=bench_mixed_precision,
  cnn=bench_cnn,
)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument(
    "--only",
    nargs="+",
    choices=tuple(BENCHES),
    default=None,
    help="which benchmarks (default: all)",
  )
  parser.add_argument(
    "--time-to-result", action="store_true", help="add the quick reproduction, timed whole"
  )
  parser.add_argument(
    "--repeats", type=int, default=5, help="timed calls per figure (default: %(default)s)"
  )
  parser.add_argument(
    "--json",
    default="results/benchmarks.json",
    help="where to write every figure (default: %(default)s)",
  )
  args = parser.parse_args(argv)
  rows = []
  for name in args.only or BENCHES:
    rows += BENCHES[name](args.repeats)
  if args.time_to_result:
    rows += bench_time_to_result()
  info = machine()
  print(
    f"machine: {info['cpu_count']} CPUs, {info['processor']}, {info['backend']}"
    f" ({len(info['devices'])} x {', '.join(sorted(set(info['devices'])))}), jax {info['jax']}"
    " -- throughputs in run-steps/s (runs x SGD steps per second) compare across devices"
  )
  print(table(rows))
  path = pathlib.Path(args.json)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(dict(machine=info, results=rows), indent=1))
  print(f"written to {path}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
