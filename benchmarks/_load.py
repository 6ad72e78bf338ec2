"""Helpers of the speed benchmarks: a busy neighbour process, the machine's load, min/median/max timing."""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def busy_neighbour(cores: int = 1) -> Iterator[list[int]]:
    """``cores`` busy-loop subprocesses for the block (each keeps one core busy); yields their pids.

    Each is started by this process and stopped by its own pid at the end, also on error or Ctrl-C."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)]
    try:
        time.sleep(1.0)  # let the scheduler see them (and the thread policy's window cover them)
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()


def condition(neighbour: bool) -> contextlib.AbstractContextManager:
    """The measurement condition: a one-core busy neighbour, or as the machine is ("quiet")."""
    return busy_neighbour(1) if neighbour else contextlib.nullcontext([])


def load_line() -> str:
    """``load average 1/5/15 min: a / b / c on N CPUs`` (to label every timing)."""
    one, five, fifteen = os.getloadavg()
    return f"load average 1/5/15 min: {one:.2f} / {five:.2f} / {fifteen:.2f} on {os.cpu_count()} CPUs"


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """``(wall seconds, result)`` of one call."""
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def spread(values: list[float]) -> str:
    """``min / median / max`` of a list of numbers."""
    return f"{min(values):.3g} / {statistics.median(values):.3g} / {max(values):.3g}"
