"""Search throughput: generation wall time split into training, evaluation and the rest, quiet and loaded.

Run: .venv/bin/python benchmarks/search_speed.py [--population 16] [--generations 3] [--steps 100]
     .venv/bin/python benchmarks/search_speed.py --neighbour --quick   # quiet vs a one-core busy neighbour
     .venv/bin/python benchmarks/search_speed.py --synthetic           # evolution overhead only (no training)

With the built-in trainer fitness, each generation's wall time is split into ``training`` (the batched
trainer), ``evaluation`` (scoring the trained members: one simulator batch) and ``rest`` (variation, checks,
compiling, the fitness cache). ``--neighbour`` runs the same search (same seed, so the same candidates) once
as the machine is and once beside a one-core busy-loop subprocess that this script starts and stops by its
own pid, and prints the ratio; it also runs the search alone with one thread, the best a busy neighbour on one
of two cores leaves possible (the one-core bound), and prints the ratios to that too. ``--compare-threads`` adds
runs with the thread count fixed at the number of CPUs (torch's default before the thread policy) beside the automatic policy (``TrainConfig.threads=None``).
"""

from __future__ import annotations

import argparse
import os
import time

from _load import condition, load_line

from symloss.search import LossSearch, MirrorTargetFitness, SearchConfig, benchmark_fitness

QUICK_STEPS = 100
"""--quick's steps per candidate: the thread policy's ratio needs short generations, not the search preset's
600 steps (which made one quiet-plus-neighbour comparison take ~10 minutes)."""


class TimedFitness:
    """The search's built-in trainer fitness, recording each call's training / scoring seconds."""

    def __init__(self, config: SearchConfig, threads: int | None) -> None:
        self.inner = benchmark_fitness(config, progress=False, threads=threads)
        self.calls: list[dict[str, float]] = []

    def validate(self) -> None:
        self.inner.validate()

    def prepare(self) -> None:
        self.inner.prepare()

    def u_ranges(self, aggregation: str):
        return self.inner.u_ranges(aggregation)

    def __call__(self, losses):
        result = self.inner(losses)
        timings = dict(result.timings) if losses else {"train": 0.0, "score": 0.0}
        timings["threads"] = self.inner.trainer.thread_policy.current
        self.calls.append(timings)
        return result


def run(config: SearchConfig, *, synthetic: bool, threads: int | None):
    """(history DataFrame, per-generation timings or None, total seconds) of one search."""
    fitness = MirrorTargetFitness("u - log(1 - exp(u))") if synthetic else TimedFitness(config, threads)
    start = time.perf_counter()
    search = LossSearch(config, fitness=fitness, progress=False).fit()
    return search.history_, None if synthetic else fitness.calls, time.perf_counter() - start


def report(title: str, history, calls, total: float) -> list[float]:
    """Print one run's table; returns the generations' wall seconds."""
    print(f"\n{title}: total {total:.1f} s; {load_line()} (end)")
    print("| generation | wall s | training s | evaluation s | rest s | threads | candidates | trained | cached "
          "| rejected | failed | best |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    walls = []
    for i, (_, row) in enumerate(history.iterrows()):
        counts = [int(row[c]) for c in ("generation", "candidates", "new", "cached", "invalid", "failed")]
        split = ["-", "-", "-", "-"]
        if calls is not None and i < len(calls):
            t = calls[i]
            split = [f"{t['train']:.1f}", f"{t['score']:.1f}", f"{row['seconds'] - t['train'] - t['score']:.1f}",
                     str(t["threads"])]
        walls.append(float(row["seconds"]))
        print(f"| {counts[0]} | {row['seconds']:.1f} | {' | '.join(split)} | {' | '.join(map(str, counts[1:]))} "
              f"| {row['best']:.4g} |")
    later = history[history["generation"] > 0]
    trained, seconds = int(later["new"].sum()), float(later["seconds"].sum())
    all_candidates = int(history["candidates"].sum())
    print(f"candidates trained per second (generations >= 1): {trained / seconds if seconds else float('nan'):.3f}; "
          f"cache hits {int(history['cached'].sum()) / all_candidates:.1%}, "
          f"rejected before training {int(history['invalid'].sum()) / all_candidates:.1%}")
    return walls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--population", type=int, default=16)
    parser.add_argument("--generations", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None,
                        help=f"training steps per candidate (default: the search preset's {SearchConfig().train.steps}; "
                             f"{QUICK_STEPS} with --quick)")
    parser.add_argument("--fitness", default="return", choices=("return", "offline"))
    parser.add_argument("--synthetic", action="store_true", help="known-answer fitness: no training at all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="trainer device: cpu or cuda")
    parser.add_argument("--threads", type=int, default=None, help="TrainConfig.threads (default: automatic)")
    parser.add_argument("--neighbour", action="store_true", help="also run beside a one-core busy neighbour")
    parser.add_argument("--compare-threads", action="store_true",
                        help="also run with threads fixed at the number of CPUs (torch's default)")
    parser.add_argument("--quick", action="store_true",
                        help=f"generations 0 and 1 only, {QUICK_STEPS} steps unless --steps is given")
    args = parser.parse_args()
    if args.quick:
        args.generations = 1
    if args.steps is None:
        args.steps = QUICK_STEPS if args.quick else SearchConfig().train.steps
    config = SearchConfig.from_dict(dict(population=args.population, generations=args.generations,
                                         steps=args.steps, fitness=args.fitness, seed=args.seed, device=args.device))
    print(f"population {args.population}, generations 0..{args.generations}, steps {args.steps}, fitness "
          f"{'synthetic' if args.synthetic else args.fitness}; dataset and reference from the cache (built first "
          f"if missing, outside the timings); {load_line()} (start)")
    settings = [("automatic threads", args.threads)]
    if args.compare_threads:
        settings.append((f"threads fixed at {len(os.sched_getaffinity(0))} (CPUs)", len(os.sched_getaffinity(0))))
    walls = {}
    runs = [(n, name, threads) for n in ([False, True] if args.neighbour else [False]) for name, threads in settings]
    bound = "threads fixed at 1 (the one-core bound)"
    if args.neighbour:  # the best a one-core neighbour leaves possible: this process alone on one core
        runs.insert(len(settings), (False, bound, 1))
    for neighbour, name, threads in runs:
        with condition(neighbour):
            history, calls, total = run(config, synthetic=args.synthetic, threads=threads)
        title = f"{name}, {'one-core neighbour' if neighbour else 'no neighbour'}"
        walls[title] = report(title, history, calls, total)
    bases = [next(iter(walls))] + ([f"{bound}, no neighbour"] if args.neighbour else [])
    for base_title in bases if len(walls) > 1 else []:
        base = walls[base_title]
        print(f"\ngeneration wall time relative to '{base_title}' (per generation; generation 0 trains all "
              "initial candidates)")
        for title, values in walls.items():
            print(f"  {title:<60} " + "  ".join(f"{v / b:.2f}x" for v, b in zip(values, base)))


if __name__ == "__main__":
    main()
