"""CPU settings of training: the thread rule, the caller's thread count restored, denormals flushed and restored."""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
import torch
from _train_data import synthetic_data

from symloss.objectives import LOSSES, MirrorLoss
from symloss.train import PopulationTrainer, TrainConfig, _cpu
from symloss.train._cpu import CpuSample, ThreadPolicy, choose_threads, denormals_flushed, flush_denormals

CFG = TrainConfig(steps=12, batch_size=8, lr=1e-2, fitness="offline")


@pytest.fixture(scope="module")
def data():
    return synthetic_data()


@contextlib.contextmanager
def torch_threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(("cpus", "busy", "cap", "expected"), [
    (2, 0.0, 2, 2),     # quiet: every CPU
    (2, 0.15, 2, 2),    # background noise below the slack
    (2, 0.3, 2, 1),     # a neighbour using 30% of a core takes it
    (2, 1.0, 2, 1),     # a one-core neighbour
    (2, 5.0, 2, 1),     # overloaded: never fewer than one
    (16, 3.5, 16, 12),
    (16, 0.0, 4, 4),    # the caller's torch.get_num_threads() caps it
    (1, 0.0, 8, 1),
])
def test_thread_rule(cpus, busy, cap, expected):
    assert choose_threads(cpus, busy, cap) == expected


def test_proc_stat_parsing_and_other_processes_busy_time():
    stat = ("cpu  1 1 1 1 1 1 1 1 0 0\n"
            "cpu0 100 0 50 800 10 0 0 5 0 0\n"   # busy = 155 ticks (idle 800 and iowait 10 excluded)
            "cpu1 300 0 0 100 0 0 0 0 0 0\n"     # busy = 300
            "cpu2 999 0 0 0 0 0 0 0 0 0\n"       # not an allowed CPU
            "intr 5 6 7\n")
    before = _cpu.read_sample(frozenset({0, 1}), stat, wall=10.0, own=2.0, ticks_per_s=100)
    assert before.cpu_busy == pytest.approx(4.55)
    after = CpuSample(wall=12.0, cpu_busy=before.cpu_busy + 3.0, own=3.0)  # 3 CPU-s busy, 1 s of them ours
    assert _cpu.others_busy(before, after) == pytest.approx(1.0)
    assert _cpu.others_busy(after, after) == 0.0
    no_proc = CpuSample(wall=12.0, cpu_busy=float("nan"), own=3.0, load1=2.5)  # macOS: load average fallback
    assert _cpu.others_busy(CpuSample(10.0, float("nan"), 2.0), no_proc) == pytest.approx(2.0)


class FakeCpus:
    """Samples in which other processes keep ``busy`` CPUs busy; the wall clock advances 1 s per sample."""

    def __init__(self) -> None:
        self.busy, self.wall, self.cpu = 0.0, 0.0, 0.0

    def __call__(self, cpus) -> CpuSample:
        self.wall += 1.0
        self.cpu += self.busy
        return CpuSample(self.wall, self.cpu, 0.0)


def test_policy_follows_the_load_and_restores_the_callers_threads(monkeypatch):
    monkeypatch.setattr(_cpu, "available_cpus", lambda: (frozenset({0, 1}), 2))
    monkeypatch.setattr(_cpu, "WINDOW_S", 0.0)
    fake = FakeCpus()
    policy = ThreadPolicy(sample=fake)
    with torch_threads(2):
        with policy.scope() as tick:
            assert torch.get_num_threads() == 1  # no window yet: one thread
            tick()
            assert torch.get_num_threads() == 2  # quiet window
            fake.busy = 1.0
            tick()
            assert torch.get_num_threads() == 1  # a one-core neighbour
        assert torch.get_num_threads() == 2
        with policy.scope() as tick:  # the next scope starts from the window since the last one
            assert torch.get_num_threads() == 1
            fake.busy = 0.0
            tick()
            assert torch.get_num_threads() == 2
        assert torch.get_num_threads() == 2
    assert [n for _, _, n in policy.history] == [2, 1, 1, 2]


def test_fixed_threads_and_restore_on_error():
    with torch_threads(1):
        with pytest.raises(RuntimeError, match="inside"), ThreadPolicy(2).scope() as tick:
            tick()
            assert torch.get_num_threads() == 2
            raise RuntimeError("inside")
        assert torch.get_num_threads() == 1


def test_fit_restores_threads_and_denormal_flag_and_results_do_not_depend_on_threads(data):
    losses = [LOSSES["dpo"](), LOSSES["orpo"]()]
    with torch_threads(1):
        one = PopulationTrainer(dataclasses.replace(CFG, threads=1)).fit(losses, data, seeds=2)
        two = PopulationTrainer(dataclasses.replace(CFG, threads=2)).fit(losses, data, seeds=2)
        assert torch.get_num_threads() == 1 and not denormals_flushed()
    for k in one.params:
        assert torch.equal(one.params[k], two.params[k])
    assert set(one.timings) == {"train", "score"}


def test_flush_denormals_in_every_thread_and_restored():
    tiny = torch.full((1 << 16,), 1e-40)  # two OpenMP chunks at 2 threads (grain size 32768)
    with torch_threads(2):
        assert not denormals_flushed() and (tiny * 1.0 != 0).all()
        with flush_denormals():
            assert denormals_flushed()
            if _cpu._openmp_library() is not None:
                assert (tiny * 1.0 == 0).all()  # the worker thread's half too
        assert not denormals_flushed() and (tiny * 1.0 != 0).all()
        with flush_denormals(enabled=False):
            assert not denormals_flushed()


def test_a_caller_that_flushes_keeps_flushing():
    torch.set_flush_denormal(True)
    try:
        with flush_denormals():
            assert denormals_flushed()
        assert denormals_flushed()
    finally:
        torch.set_flush_denormal(False)


def test_zoo_results_unchanged_by_flushing_denormals(data, monkeypatch):
    losses = [factory() for factory in LOSSES.values()]
    losses.append(MirrorLoss("softplus(u)", "softplus(-z)", beta=0.1, name="softplus(u)"))  # produces denormals
    flushed = PopulationTrainer(CFG).fit(losses, data, seeds=1)
    monkeypatch.setattr("symloss.train._population.flush_denormals", lambda *a, **k: contextlib.nullcontext())
    plain = PopulationTrainer(CFG).fit(losses, data, seeds=1)
    assert flushed.status == plain.status
    torch.testing.assert_close(flushed.curves["loss"], plain.curves["loss"], rtol=0, atol=1e-6, equal_nan=True)
    for k in flushed.params:
        torch.testing.assert_close(flushed.params[k], plain.params[k], rtol=0, atol=1e-6)
