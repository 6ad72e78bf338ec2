"""Training threads: 1 thread, one per CPU, and the automatic policy, quiet and beside a busy neighbour.

    python benchmarks/threads_speed.py [--quick] [--members 16] [--steps 30] [--repeats 3]

The batched trainer (zoo losses, synthetic Hopper-shaped data, 32 pairs, no fitness) with
``TrainConfig.threads`` = 1, = the number of CPUs (torch's default before the policy), and None (automatic:
``symloss.train._cpu``), timed in turn; then the same beside a one-core busy-loop subprocess that this
script starts and stops by its own pid. Each cell: member-steps/s, fastest of ``--repeats``, and its ratio to
the best setting of the same condition (the policy must never be 5x slower than the best).
"""

from __future__ import annotations

import argparse
import os

from _load import condition, load_line, spread, timed
from population_speed import hopper_like_data, losses_for, no_fitness

from symloss.train import PopulationTrainer, TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=16)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="steps 15, repeats 2")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.repeats = 15, 2
    cpus = len(os.sched_getaffinity(0))
    data = hopper_like_data()
    losses = losses_for(args.members)
    settings = {"1 thread": 1, f"{cpus} threads (CPUs)": cpus, "automatic": None}
    PopulationTrainer(TrainConfig(steps=2, batch_size=4, fitness=no_fitness, threads=1)).fit(losses, data)
    print(f"P = {args.members}, {args.steps} steps x {args.batch_size} pairs; member-steps/s min / median / max "
          f"of {args.repeats}; {load_line()} (start)")
    for neighbour in (False, True):
        trainers = {name: PopulationTrainer(TrainConfig(steps=args.steps, batch_size=args.batch_size,
                                                        fitness=no_fitness, threads=t))
                    for name, t in settings.items()}
        rates: dict[str, list[float]] = {name: [] for name in settings}
        chosen: list[int] = []
        with condition(neighbour):
            for _ in range(args.repeats):
                for name, trainer in trainers.items():
                    seconds, _ = timed(lambda trainer=trainer: trainer.fit(losses, data, seeds=1))
                    rates[name].append(args.members * args.steps / seconds)
            chosen = [n for _, _, n in trainers["automatic"]._threads.history]
            print(f"\n{'one-core neighbour' if neighbour else 'no neighbour'}; {load_line()} (end)")
        best = max(max(v) for v in rates.values())
        print(f"{'setting':<20} {'member-steps/s':>24} {'best / this':>12}")
        for name, values in rates.items():
            print(f"{name:<20} {spread(values):>24} {best / max(values):>11.2f}x")
        print(f"automatic policy's choices (every 0.5 s): {chosen}")


if __name__ == "__main__":
    main()
