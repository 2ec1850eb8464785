"""Stop requests: SIGINT and SIGTERM become a flag that a training loop polls.

Schedulers, ``timeout`` and ``kill`` send SIGTERM; Ctrl-C sends SIGINT. Inside
:func:`stop_requests` the first of either only sets ``requested``, so the
loop ends at its next step boundary with a consistent state to checkpoint
and record; a second signal acts as usual (KeyboardInterrupt, or
termination), for a user who does not want to wait.

Example:
  >>> import os, signal
  >>> with stop_requests() as stop:
  ...   os.kill(os.getpid(), signal.SIGTERM)
  ...   stop.requested, stop.signal_name
  (True, 'SIGTERM')
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
  """Whether a stop was asked for, and by which signal."""

  def __init__(self):
    self.signum: int | None = None

  @property
  def requested(self) -> bool:
    return self.signum is not None

  @property
  def signal_name(self) -> str | None:
    return signal.Signals(self.signum).name if self.requested else None


def exit_code(signal_name: str) -> int:
  """The shell's convention for a process ended by a signal: 128 + its number.

  Example:
    >>> exit_code("SIGTERM"), exit_code("SIGINT")
    (143, 130)
  """
  return 128 + signal.Signals[signal_name].value


@contextlib.contextmanager
def stop_requests() -> Iterator[StopRequest]:
  """Defers SIGINT/SIGTERM while the block runs (main thread only; elsewhere a no-op)."""
  stop = StopRequest()
  if threading.current_thread() is not threading.main_thread():
    yield stop
    return
  previous = {s: signal.getsignal(s) for s in SIGNALS}

  def handler(signum, frame):
    stop.signum = signum
    for s in SIGNALS:  # a second signal is not deferred
      signal.signal(s, previous[s])

  for s in SIGNALS:
    signal.signal(s, handler)
  try:
    yield stop
  finally:
    for s in SIGNALS:
      signal.signal(s, previous[s])
