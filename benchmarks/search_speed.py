"""Search throughput: generation wall time, candidates trained per second, cache hit rate, rejections.

Run: .venv/bin/python benchmarks/search_speed.py [--population 16] [--generations 3] [--steps 150]
     .venv/bin/python benchmarks/search_speed.py --synthetic   # evolution overhead only (no training)

Prints one row per generation and a summary: candidates trained per second of wall time, the share of
candidates answered by the fitness cache, and the share rejected by the validity checks before training.
"""

from __future__ import annotations

import argparse
import time

from symloss.search import LossSearch, MirrorTargetFitness, SearchConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--population", type=int, default=16)
    parser.add_argument("--generations", type=int, default=3)
    parser.add_argument("--steps", type=int, default=SearchConfig().train.steps)
    parser.add_argument("--fitness", default="return", choices=("return", "offline"))
    parser.add_argument("--synthetic", action="store_true", help="known-answer fitness: no training at all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="trainer device: cpu or cuda")
    args = parser.parse_args()
    fitness = MirrorTargetFitness("u - log(1 - exp(u))") if args.synthetic else None
    config = SearchConfig.from_dict(dict(population=args.population, generations=args.generations, steps=args.steps,
                                         fitness=args.fitness, seed=args.seed, device=args.device))
    start = time.perf_counter()
    search = LossSearch(config, fitness=fitness, progress=False).fit()
    wall = time.perf_counter() - start
    h = search.history_
    print(f"population {args.population}, {args.generations} generations after the initial one, "
          f"steps {args.steps}, fitness {'synthetic' if args.synthetic else args.fitness}; total {wall:.1f} s "
          "(generation 0 includes dataset/reference preparation when not cached)")
    print("| generation | wall s | candidates | trained | cached | rejected | failed | best |")
    print("|---|---|---|---|---|---|---|---|")
    for _, row in h.iterrows():
        counts = [int(row[c]) for c in ("generation", "candidates", "new", "cached", "invalid", "failed")]
        print(f"| {counts[0]} | {row['seconds']:.1f} | {' | '.join(map(str, counts[1:]))} | {row['best']:.4g} |")
    later = h[h["generation"] > 0]
    trained, seconds = int(later["new"].sum()), float(later["seconds"].sum())
    total = int(h["candidates"].sum())
    print(f"\ncandidates trained per second (generations >= 1): {trained / seconds if seconds else float('nan'):.3f}")
    print(f"cache hit rate: {int(h['cached'].sum()) / total:.1%} of {total} candidates")
    print(f"rejected by validity checks before training: {int(h['invalid'].sum()) / total:.1%}")


if __name__ == "__main__":
    main()
