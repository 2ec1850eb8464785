"""Wall-clock timing of JAX functions: compilation excluded, results awaited."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import jax


def timed(fn: Callable[[], object], repeats: int) -> dict:
  """Median/min/max seconds of ``fn`` after one warm-up; blocks on JAX results."""
  jax.block_until_ready(fn())
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return dict(median=statistics.median(times), min=min(times), max=max(times), repeats=repeats)


def timed_interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, dict]:
  """Like :func:`timed` for several functions, alternating them run by run.

  Ratios between them are then measured under the same machine load: on a
  shared 2-core machine single timings swing by 2x from run to run.
  """
  for fn in fns.values():
    jax.block_until_ready(fn())
  times = {name: [] for name in fns}
  for _ in range(repeats):
    for name, fn in fns.items():
      start = time.perf_counter()
      jax.block_until_ready(fn())
      times[name].append(time.perf_counter() - start)
  return {
    name: dict(median=statistics.median(t), min=min(t), max=max(t), repeats=repeats)
    for name, t in times.items()
  }
