"""How training and evaluation use the CPU: how many threads, and flushing denormals to zero.

**Threads.** torch's OpenMP threads spin while they wait for each other, so one thread that shares its core
with another busy process stalls every parallel region: with one busy neighbour on a 2-core machine, a
2-thread training ran 20x slower than a 1-thread one (benchmarks/RESULTS.md, "Threads under load"). The
trainer therefore counts the CPUs that other processes leave free:

    C     = CPUs this process may use: |sched_getaffinity(0)|, at most the cgroup CPU quota (cpu.max)
    busy  = CPU-seconds per second that other processes used on those C CPUs over the last window:
            (busy time of the C CPUs in /proc/stat - this process's CPU time) / wall time
    n     = clamp(floor(C - busy + FREE_SLACK), 1, min(C, torch.get_num_threads()))

The caller's ``torch.get_num_threads()`` caps n (so ``OMP_NUM_THREADS`` or ``torch.set_num_threads(1)`` are
honoured), and it is restored when the scope ends. n is chosen again every ``WINDOW_S`` seconds at a training
step boundary, from the window just ended; a scope starts from the window since the previous scope of the same
policy, or from one thread. ``TrainConfig.threads`` fixes n instead. Trained parameters do not depend on n
(tests/test_train_cpu.py), so the choice only changes speed. Without /proc/stat (macOS, Windows) busy is the
1-minute load average minus this process's own CPU rate.

Why not ``OMP_WAIT_POLICY=PASSIVE``: it must be set before torch starts its threads (a library cannot), and it
costs about 1.3x on a quiet machine (shared/ECOSYSTEM-NOTES.md).

**Denormals.** Values below float32's normal range (about 1.2e-38, produced e.g. by the backward pass of a
mirror map like ``softplus(u)``) take a slow microcode path on x86. :func:`flush_denormals` sets
flush-to-zero and denormals-are-zero (``torch.set_flush_denormal``) for the calling thread and, because that
flag is per thread, also inside torch's OpenMP worker threads (one parallel region through libgomp's
``GOMP_parallel``), and restores the previous state afterwards. On CUDA nothing is needed: GPUs handle
float32 denormals at full speed.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["CpuSample", "ThreadPolicy", "available_cpus", "choose_threads", "denormals_flushed",
           "flush_denormals", "others_busy", "read_sample"]

log = logging.getLogger(__name__)

WINDOW_S = 0.5
"""Seconds between two thread choices during training (one ``time.perf_counter`` per step in between)."""
FREE_SLACK = 0.2
"""Free CPU fraction added before rounding down: a neighbour using more than 20% of a core takes that core."""
MIN_WINDOW_S = 0.2
"""A shorter window is not used (/proc/stat counts in 10 ms ticks): the current choice stays."""
STALE_S = 30.0
"""A window older than this is not used: the scope starts from one thread."""


def _quota_cpus() -> float:
    """The cgroup CPU quota in CPUs (quota / period), ``inf`` when there is none or it cannot be read."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return math.inf
    best = math.inf
    for line in lines:
        _, controllers, path = line.split(":", 2)
        rel = path.lstrip("/")
        if controllers == "":  # cgroup v2: "<quota|max> <period>"
            files = [(Path("/sys/fs/cgroup") / rel / "cpu.max", None)]
        elif "cpu" in controllers.split(","):  # cgroup v1
            root = Path("/sys/fs/cgroup/cpu") / rel
            files = [(root / "cpu.cfs_quota_us", root / "cpu.cfs_period_us")]
        else:
            continue
        for quota_file, period_file in files:
            try:
                if period_file is None:
                    quota, period = quota_file.read_text().split()[:2]
                else:
                    quota, period = quota_file.read_text().strip(), period_file.read_text().strip()
                if quota not in ("max", "-1") and float(period) > 0:
                    best = min(best, float(quota) / float(period))
            except (OSError, ValueError):
                continue
    return best


def available_cpus() -> tuple[frozenset[int], int]:
    """``(cpus, C)``: the CPU ids this process may run on, and C = their number capped by the cgroup quota."""
    try:
        cpus = frozenset(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = frozenset(range(os.cpu_count() or 1))
    quota = _quota_cpus()
    return cpus, max(1, min(len(cpus), math.ceil(quota - 1e-9) if math.isfinite(quota) else len(cpus)))


def choose_threads(cpus: int, busy: float, cap: int) -> int:
    """n = clamp(floor(cpus - busy + FREE_SLACK), 1, min(cpus, cap)): threads that find a free core each."""
    return max(1, min(cpus, cap, math.floor(cpus - max(0.0, busy) + FREE_SLACK)))


@dataclass(frozen=True)
class CpuSample:
    """Counters at one moment: wall clock (s), busy time of the allowed CPUs (s; NaN if unknown), own CPU time (s)."""

    wall: float
    cpu_busy: float
    own: float
    load1: float = math.nan


def read_sample(cpus: frozenset[int], stat_text: str | None = None, *, wall: float | None = None,
                own: float | None = None, ticks_per_s: float | None = None) -> CpuSample:
    """A :class:`CpuSample` from ``/proc/stat`` (or ``stat_text``): busy = total - idle - iowait, steal included.

    A CPU's line is ``cpuN user nice system idle iowait irq softirq steal guest guest_nice`` in clock ticks.
    """
    wall = time.perf_counter() if wall is None else wall
    own = time.process_time() if own is None else own
    if stat_text is None:
        try:
            stat_text = Path("/proc/stat").read_text()
        except OSError:
            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
            return CpuSample(wall, math.nan, own, load)
    hz = ticks_per_s or (os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100)
    busy = 0
    for line in stat_text.splitlines():
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cpus:
            continue
        ticks = [int(v) for v in rest.split()[:8]]
        busy += sum(ticks) - ticks[3] - ticks[4]
    return CpuSample(wall, busy / hz, own)


def others_busy(before: CpuSample, after: CpuSample) -> float:
    """CPU-seconds per second used by other processes between two samples (>= 0)."""
    dt = after.wall - before.wall
    if dt <= 0:
        return 0.0
    own_rate = (after.own - before.own) / dt
    if math.isnan(after.cpu_busy) or math.isnan(before.cpu_busy):
        return 0.0 if math.isnan(after.load1) else max(0.0, after.load1 - own_rate)
    return max(0.0, (after.cpu_busy - before.cpu_busy) / dt - own_rate)


class ThreadPolicy:
    """Chooses torch's thread count during a training scope (module docstring); held by a trainer.

    Args:
        threads: a fixed count (>= 1), or None for the automatic rule.
        sample: reads a :class:`CpuSample` for a set of CPU ids (tests pass a fake).
    """

    def __init__(self, threads: int | None = None, *,
                 sample: Callable[[frozenset[int]], CpuSample] = read_sample) -> None:
        self.fixed = threads
        self._sample = sample
        self._last: CpuSample | None = None
        self.current = 1
        self.limit = 1
        self.history: collections.deque[tuple[float, float, int]] = collections.deque(maxlen=256)
        """(wall, busy, n) of the latest automatic choices."""

    def _choose(self, cpus: frozenset[int], count: int) -> int:
        """n from the window since the last sample; too short a window keeps the current n (and grows)."""
        now = self._sample(cpus)
        last = self._last
        if last is not None and now.wall - last.wall < MIN_WINDOW_S:
            return self.current
        self._last = now
        if last is None or now.wall - last.wall > STALE_S:
            return 1
        busy = others_busy(last, now)
        n = choose_threads(count, busy, self.limit)
        self.history.append((now.wall, busy, n))
        return n

    @contextlib.contextmanager
    def scope(self) -> Iterator[Callable[[], None]]:
        """Set torch's thread count for the block; yields ``tick()``, to be called after every step.

        ``limit`` is the most threads the block may use (the fixed count, or the caller's
        ``torch.get_num_threads()``). The caller's thread count is restored at the end, also on error.
        """
        caller = torch.get_num_threads()
        cpus, count = available_cpus()
        if self.fixed is not None:
            self.limit = self.current = int(self.fixed)
        else:
            self.limit = caller
            self.current = self._choose(cpus, count)
        torch.set_num_threads(self.current)
        next_check = time.perf_counter() + WINDOW_S

        def tick() -> None:
            nonlocal next_check
            if self.fixed is not None or time.perf_counter() < next_check:
                return
            n = self._choose(cpus, count)
            next_check = time.perf_counter() + WINDOW_S
            if n != self.current:
                log.debug("threads: %d -> %d", self.current, n)
                torch.set_num_threads(n)
                self.current = n

        try:
            yield tick
        finally:
            torch.set_num_threads(caller)


_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def denormals_flushed() -> bool:
    """Whether the calling thread flushes float32 denormals to zero (a product below the normal range is 0)."""
    return (torch.tensor(1e-30) * 1e-10).item() == 0.0


def _openmp_library() -> ctypes.CDLL | None:
    """torch's OpenMP runtime as loaded in this process (libgomp; Intel's and LLVM's export the same
    ``GOMP_parallel`` entry point), preferring the copy in torch's own ``lib`` folder; None if there is none."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    names = ("/libgomp", "/libiomp5", "/libomp")
    paths = {line.split()[-1] for line in maps.splitlines() if any(name in line for name in names)}
    torch_lib = str(Path(torch.__file__).parent / "lib")
    for path in sorted(paths, key=lambda p: (not p.startswith(torch_lib), p)):
        try:
            lib = ctypes.CDLL(path)
            lib.GOMP_parallel.restype = None
            lib.GOMP_parallel.argtypes = [_CALLBACK, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
            return lib
        except (OSError, AttributeError):
            continue
    return None


def _set_flush_denormal_everywhere(on: bool, threads: int) -> None:
    """``torch.set_flush_denormal(on)`` in this thread and in each of ``threads`` OpenMP threads."""
    torch.set_flush_denormal(on)
    if threads <= 1:
        return
    lib = _openmp_library()
    if lib is None:
        log.debug("flush_denormals: no libgomp found; only the calling thread flushes denormals")
        return
    callback = _CALLBACK(lambda _: torch.set_flush_denormal(on))  # runs once in every thread of the team
    lib.GOMP_parallel(callback, None, threads, 0)


@contextlib.contextmanager
def flush_denormals(enabled: bool = True, *, threads: int | None = None) -> Iterator[None]:
    """Flush denormals to zero in the block (this thread and torch's OpenMP threads); restore afterwards.

    Args:
        enabled: False makes this a no-op; so is a calling thread that already flushes them.
        threads: the most OpenMP threads the block may use (default ``torch.get_num_threads()``).
    """
    if not enabled or denormals_flushed():
        yield
        return
    threads = torch.get_num_threads() if threads is None else threads
    _set_flush_denormal_everywhere(True, threads)
    try:
        yield
    finally:
        _set_flush_denormal_everywhere(False, max(threads, torch.get_num_threads()))
