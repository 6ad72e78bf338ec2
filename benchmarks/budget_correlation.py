"""How well does a cheap training budget predict an expensive one? Spearman rank correlation over candidates.

32 random valid candidates (DEAP mirror-map trees, ``genHalfAndHalf`` depth 1-4 as the search's initial
population, kept when ``check_mirror`` passes, distinct canonical forms) in the DPO template (beta 0.1,
summed log-probs, link softplus(-z)) are trained on Hopper ``noisy`` by the population trainer at each
budget in ``--steps`` (one seed, minibatch seed 0, ``--batch-size`` pairs). Every trained policy gets both
fitnesses: ``return`` (``--episodes`` greedy episodes, the same start states at every budget) and
``offline`` (held-out clean accuracy + expert log-likelihood). The table gives Spearman rho between
fitness at B and at B' for every pair of budgets (failed candidates dropped); the issue's question is
the B vs 4B rows.

    python benchmarks/budget_correlation.py                      # steps 25 100 400; about 15 min on 2 shared cores
    python benchmarks/budget_correlation.py --write              # append the table to benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import time
from pathlib import Path

import torch
from deap import gp
from scipy.stats import spearmanr

from symloss import bench
from symloss.expr import canonical_key, check_mirror, make_pset, tree_to_sympy
from symloss.objectives import dpo
from symloss.train import PopulationTrainer, TrainConfig, offline_fitness, prepare_data, return_fitness

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def random_candidates(n: int, seed: int, beta: float = 0.1) -> list:
    """``n`` distinct valid DPO-template losses (inverse temperature ``beta``) with a random mirror map m(u)."""
    random.seed(seed)
    pset = make_pset("mirror")
    found: dict[str, object] = {}
    while len(found) < n:
        expr = tree_to_sympy(gp.PrimitiveTree(gp.genHalfAndHalf(pset, min_=1, max_=4)))
        key = canonical_key(expr)
        if key not in found and check_mirror(expr):
            found[key] = expr
    return [dpo(beta=beta).replace(mirror=expr, name=f"c{i}") for i, expr in enumerate(found.values())]


def both_fitnesses(spec, params, context) -> dict[str, torch.Tensor]:
    """``return`` as the fitness, the offline fitness and its components as extra metrics."""
    offline = offline_fitness(spec, params, context)
    return {"fitness": return_fitness(spec, params, context), "offline": offline["fitness"],
            "accuracy": offline["accuracy"], "expert_loglik": offline["expert_loglik"]}


def rho(a: torch.Tensor, b: torch.Tensor) -> tuple[float, int]:
    ok = torch.isfinite(a) & torch.isfinite(b)
    return float(spearmanr(a[ok].numpy(), b[ok].numpy()).statistic), int(ok.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=32)
    parser.add_argument("--steps", type=int, nargs="+", default=[25, 100, 400], help="budgets (training steps)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate at every budget")
    parser.add_argument("--beta", type=float, default=0.1, help="beta of the DPO template")
    parser.add_argument("--seed", type=int, default=0, help="candidate trees and minibatch order")
    parser.add_argument("--write", action="store_true", help="append the table to benchmarks/RESULTS.md")
    parser.add_argument("--save", default=None, help="write every candidate's scores to this JSON file")
    args = parser.parse_args()
    start = time.perf_counter()
    ds = bench.build_dataset("hopper", "noisy", seed=0)
    spec = bench.spec_for_dataset(ds, n_bins=11)
    data = prepare_data(ds, spec, bench.load_reference(ds, spec, seed=0), holdout_fraction=0.1)
    losses = random_candidates(args.candidates, args.seed, args.beta)
    scores = {}
    for steps in args.steps:
        cfg = TrainConfig(steps=steps, batch_size=args.batch_size, lr=args.lr, episodes=args.episodes,
                          fitness=both_fitnesses)
        result = PopulationTrainer(cfg).fit(losses, data, seeds=[args.seed])
        scores[steps] = {"return": result.fitness_per_seed[:, 0], "offline": result.metrics["offline"][:, 0]}
        print(f"steps={steps}: {result.wall_s:.0f} s, failed {result.status.count('failed')}, "
              f"return median {scores[steps]['return'].nanmedian():.0f}", flush=True)
    lines = ["| B (steps) | B' (steps) | candidates ok | rho return(B), return(B') | rho offline(B), offline(B') "
             "| rho offline(B), return(B') |", "|---|---|---|---|---|---|"]
    for i, b in enumerate(args.steps):
        for b2 in args.steps[i + 1:]:
            lo, hi = scores[b], scores[b2]
            r_ret, n_ok = rho(lo["return"], hi["return"])
            r_off, _ = rho(lo["offline"], hi["offline"])
            r_x, _ = rho(lo["offline"], hi["return"])
            lines.append(f"| {b} | {b2} | {n_ok}/{len(losses)} | {r_ret:.2f} | {r_off:.2f} | {r_x:.2f} |")
    if args.save:
        raw = {str(b): {k: v.tolist() for k, v in sc.items()} for b, sc in scores.items()}
        Path(args.save).write_text(json.dumps({"names": [loss.name for loss in losses],
                                               "mirrors": [loss.to_dict()["mirror"] for loss in losses],
                                               "scores": raw}, indent=1))
    table = "\n".join(lines)
    print(table)
    minutes = (time.perf_counter() - start) / 60
    if args.write:
        with RESULTS.open("a") as f:
            f.write(f"\n## Budget correlation ({datetime.date.today().isoformat()})\n\n"
                    f"Machine: 2-core CPU, no GPU (shared with other jobs). Command: `python "
                    f"benchmarks/budget_correlation.py --steps {' '.join(map(str, args.steps))} --candidates "
                    f"{args.candidates} --batch-size {args.batch_size} --episodes {args.episodes}` "
                    f"({minutes:.0f} min). Hopper noisy, {len(losses)} random valid mirror maps in the DPO "
                    f"template, one seed.\n\n{table}\n")


if __name__ == "__main__":
    main()
