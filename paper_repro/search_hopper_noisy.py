"""Claim: a symbolic search on Hopper ``noisy`` finds a loss that beats DPO and ORPO (paper: discovered
objectives are more robust to label noise than DPO/ORPO).

Run (small default, about 20-40 minutes on 2 cores):
    .venv/bin/python paper_repro/search_hopper_noisy.py
Full scale: --population 64 --generations 20 --final-steps 2000 --final-episodes 10

Steps: (1) LossSearch on Hopper ``noisy`` with the search budget; (2) the best loss, DPO and ORPO trained
from the same SFT reference with the final budget on fresh seeds (not used by the search) and evaluated
in the simulator; (3) a table appended to paper_repro/RESULTS.md, whichever way it comes out.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from symloss.objectives import dpo, orpo
from symloss.search import LossSearch, SearchConfig
from symloss.search._train_fitness import TrainerFitness
from symloss.train import TrainConfig

RESULTS = Path(__file__).with_name("RESULTS.md")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="hopper")
    parser.add_argument("--dataset", default="noisy")
    parser.add_argument("--population", type=int, default=16)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--steps", type=int, default=SearchConfig().steps, help="search budget: training steps")
    parser.add_argument("--fitness", default="return", choices=("return", "offline"))
    parser.add_argument("--lr", type=float, default=SearchConfig().lr, help="search budget: learning rate")
    parser.add_argument("--batch-size", type=int, default=SearchConfig().batch_size)
    parser.add_argument("--beta", type=float, default=0.1, help="beta of the search template and of DPO")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--final-seeds", default="100,101,102")
    parser.add_argument("--final-steps", type=int, default=600)
    parser.add_argument("--final-episodes", type=int, default=5)
    parser.add_argument("--final-lr", type=float, default=3e-4)
    parser.add_argument("--run-dir", default=None)
    parser.add_argument("--no-write", action="store_true", help="do not append to paper_repro/RESULTS.md")
    args = parser.parse_args()

    start = time.perf_counter()
    run_dir = args.run_dir or f"runs/repro-{args.env}-{args.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    config = SearchConfig(env=args.env, dataset=args.dataset, population=args.population,
                          generations=args.generations, steps=args.steps, fitness=args.fitness, seed=args.seed,
                          lr=args.lr, batch_size=args.batch_size, beta=args.beta, run_dir=run_dir)
    search = LossSearch(config, progress=True).fit()
    search_minutes = (time.perf_counter() - start) / 60
    best = search.best_
    seeds = [int(s) for s in args.final_seeds.split(",")]
    final = TrainConfig(steps=args.final_steps, batch_size=64, episodes=args.final_episodes,
                        lr=args.final_lr, fitness="return")
    evaluate = TrainerFitness(env=args.env, dataset=args.dataset, train_config=final, seeds=seeds)
    names = ["discovered", f"dpo (beta {args.beta})", "orpo"]
    results = evaluate([best, dpo(beta=args.beta), orpo()])
    rows = [f"| {n} | {r.mean:.1f} | {r.std:.1f} | {'ok' if r.ok else r.reason} |" for n, r in zip(names, results)]
    verdict = "beats" if results[0].mean > max(results[1].mean, results[2].mean) else "does not beat"
    text = "\n".join([
        f"\n## Search on {args.env} `{args.dataset}` vs DPO and ORPO ({time.strftime('%Y-%m-%d')})",
        "",
        f"Command: `.venv/bin/python paper_repro/search_hopper_noisy.py --population {args.population} "
        f"--generations {args.generations} --steps {args.steps} --lr {args.lr} --batch-size {args.batch_size} "
        f"--beta {args.beta} --fitness {args.fitness} --final-steps {args.final_steps} --final-lr {args.final_lr} "
        f"--final-episodes {args.final_episodes}` on a 2-core CPU (search "
        f"{search_minutes:.0f} min, run dir `{run_dir}`).",
        f"Final evaluation: {args.final_steps} training steps from the SFT reference, return over "
        f"{args.final_episodes} episodes, fresh seeds {seeds}; mean and std over seeds.",
        "",
        "| loss | return mean | std over seeds | status |",
        "|---|---|---|---|",
        *rows,
        "",
        f"Discovered loss ({verdict} both baselines here):",
        "",
        "```latex",
        best.latex(),
        "```",
        "",
    ])
    print(text)
    if not args.no_write:
        with open(RESULTS, "a") as handle:
            handle.write(text)


if __name__ == "__main__":
    main()
