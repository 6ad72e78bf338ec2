"""Denormals: training a denormal-producing candidate with and without flush-to-zero, side by side.

    python benchmarks/denormal_speed.py [--quick] [--members 8] [--steps 20] [--repeats 3]

The candidate is the search's zoo seed ``softplus(u)`` in the DPO template (beta 0.1, sequence log-probs):
u = log pi(y) is a sum of about 30-150 token log-probs, so softplus(u) ~ e^u and its derivative sigmoid(u)
fall below float32's normal range (1.2e-38) for part of the pairs, and the backward pass then carries
denormal values through every GEMM. DPO is the control (no denormals). Variants, in turn in one run:

- ``flush``: ``PopulationTrainer.fit`` as it is (``symloss.train._cpu.flush_denormals`` around training);
- ``flush, calling thread only``: ``torch.set_flush_denormal(True)`` in the calling thread only (torch's
  OpenMP worker threads keep denormals: the flag is per thread);
- ``no flush``: the training scope replaced by a no-op (the behaviour before this change).

Member-steps/s (fastest of ``--repeats``) at 1 thread and at all CPUs, the speed-up over ``no flush``, and the
largest difference of the loss curves and parameters between ``flush`` and ``no flush`` (must be <= 1e-6).
"""

from __future__ import annotations

import argparse
import contextlib
import os
from unittest import mock

import torch
from _load import load_line, timed
from population_speed import hopper_like_data, no_fitness

from symloss.objectives import MirrorLoss, dpo
from symloss.train import PopulationTrainer, TrainConfig


@contextlib.contextmanager
def calling_thread_only(enabled: bool = True, **_):
    """The naive scope: the flag set in this thread only."""
    torch.set_flush_denormal(enabled)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


VARIANTS = {
    "flush": None,
    "flush, calling thread only": calling_thread_only,
    "no flush": lambda *a, **k: contextlib.nullcontext(),
}


def run(variant: str, losses, data, cfg: TrainConfig):
    scope = VARIANTS[variant]
    patch = contextlib.nullcontext() if scope is None else mock.patch("symloss.train._population.flush_denormals",
                                                                      scope)
    with patch:
        return timed(lambda: PopulationTrainer(cfg).fit(losses, data, seeds=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="steps 10, repeats 2")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.repeats = 10, 2
    data = hopper_like_data()
    candidates = {
        "softplus(u)": MirrorLoss("softplus(u)", "softplus(-z)", beta=0.1, name="softplus(u)"),
        "dpo (control)": dpo(),
    }
    cpus = len(os.sched_getaffinity(0))
    print(f"torch {torch.__version__}; {args.members} members, {args.steps} steps x {args.batch_size} pairs; "
          f"{load_line()} (start)")
    rows = []
    for threads in sorted({1, cpus}):
        cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, fitness=no_fitness, threads=threads)
        for name, loss in candidates.items():
            losses = [loss] * args.members
            run("no flush", losses, data, cfg)  # warm-up: compile the loss
            times: dict[str, list[float]] = {v: [] for v in VARIANTS}
            results = {}
            for _ in range(args.repeats):
                for variant in VARIANTS:
                    seconds, results[variant] = run(variant, losses, data, cfg)
                    times[variant].append(seconds)
            a, b = results["flush"], results["no flush"]
            diff = max((a.curves["loss"] - b.curves["loss"]).abs().max().item(),
                       *((a.params[k] - b.params[k]).abs().max().item() for k in a.params))
            base = min(times["no flush"])
            for variant, values in times.items():
                rows.append((threads, name, variant, args.members * args.steps / min(values), base / min(values),
                             diff if variant == "flush" else None))
    print(f"{load_line()} (end)")
    print(f"{'threads':>7} {'candidate':<14} {'variant':<27} {'member-steps/s':>14} {'vs no flush':>11} "
          f"{'max |flush - no flush|':>22}")
    for threads, name, variant, rate, ratio, diff in rows:
        print(f"{threads:>7} {name:<14} {variant:<27} {rate:>14.1f} {ratio:>10.2f}x "
              f"{'' if diff is None else f'{diff:.1e}':>22}")


if __name__ == "__main__":
    main()
