"""Claim: a symbolic search on Hopper ``noisy`` finds a loss that beats DPO and ORPO (paper: discovered
objectives are more robust to label noise than DPO/ORPO).

Run (small default, about 20-40 minutes on 2 cores):
    .venv/bin/python paper_repro/search_hopper_noisy.py
Full scale: --population 64 --generations 20 --final-steps 2000

Steps: (1) LossSearch on Hopper ``noisy`` with the ``search`` protocol (``symloss.train.PROTOCOLS``);
(2) the best loss, DPO and ORPO trained from the same SFT reference with the ``final`` protocol (its own
fresh seeds and start states, not used by the search) and evaluated in the simulator; (3) a table
appended to paper_repro/RESULTS.md, whichever way it comes out. Every option left unset keeps its
protocol's value; the ones given are written into the table's command line.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from symloss.objectives import dpo, orpo
from symloss.search import LossSearch, SearchConfig
from symloss.train import BenchmarkFitness, TrainConfig

RESULTS = Path(__file__).with_name("RESULTS.md")
SEARCH_OPTIONS = {"steps": int, "lr": float, "batch_size": int, "fitness": str}
"""Overrides of the search protocol (``--steps`` ...); unset: the ``search`` preset's value."""
FINAL_OPTIONS = {"seeds": int, "steps": int, "episodes": int, "lr": float}
"""Overrides of the final protocol (``--final-steps`` ...); unset: the ``final`` preset's value."""


def _given(args: argparse.Namespace, names: dict, prefix: str = "") -> dict:
    return {name: v for name in names if (v := getattr(args, prefix + name)) is not None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="hopper")
    parser.add_argument("--dataset", default="noisy")
    parser.add_argument("--population", type=int, default=16)
    parser.add_argument("--generations", type=int, default=4)
    for name, kind in SEARCH_OPTIONS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, help="search protocol override")
    parser.add_argument("--beta", type=float, default=0.1, help="beta of the search template and of DPO")
    parser.add_argument("--seed", type=int, default=0)
    for name, kind in FINAL_OPTIONS.items():
        parser.add_argument(f"--final-{name}", type=kind, help="final protocol override")
    parser.add_argument("--run-dir", default=None)
    parser.add_argument("--no-write", action="store_true", help="do not append to paper_repro/RESULTS.md")
    args = parser.parse_args()

    start = time.perf_counter()
    run_dir = args.run_dir or f"runs/repro-{args.env}-{args.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    config = SearchConfig.from_dict({"env": args.env, "dataset": args.dataset, "population": args.population,
                                     "generations": args.generations, "seed": args.seed, "beta": args.beta,
                                     "run_dir": run_dir, "protocol": "search", **_given(args, SEARCH_OPTIONS)})
    search = LossSearch(config, progress=True).fit()
    search_minutes = (time.perf_counter() - start) / 60
    best = search.best_
    final = TrainConfig.preset("final", env=args.env, fitness="return", **_given(args, FINAL_OPTIONS, "final_"))
    result = BenchmarkFitness(env=args.env, dataset=args.dataset, protocol=final)([best, dpo(beta=args.beta), orpo()])
    names = ["discovered", f"dpo (beta {args.beta})", "orpo"]
    rows = [f"| {n} | {m:.1f} | {s:.1f} | {st if st == 'ok' else why} |" for n, m, s, st, why
            in zip(names, result.fitness.tolist(), result.fitness_std.tolist(), result.status, result.reason)]
    means = result.fitness.tolist()
    verdict = "beats" if means[0] > max(means[1], means[2]) else "does not beat"
    overrides = " ".join(f"--{name.replace('_', '-')} {v}" for name, v in _given(args, SEARCH_OPTIONS).items())
    overrides += "".join(f" --final-{name} {v}" for name, v in _given(args, FINAL_OPTIONS, "final_").items())
    text = "\n".join([
        f"\n## Search on {args.env} `{args.dataset}` vs DPO and ORPO ({time.strftime('%Y-%m-%d')})",
        "",
        f"Command: `.venv/bin/python paper_repro/search_hopper_noisy.py --population {args.population} "
        f"--generations {args.generations} --beta {args.beta} {overrides}`".replace("  ", " ")
        + f" on a 2-core CPU (search {search_minutes:.0f} min, run dir `{run_dir}`).",
        f"Search protocol: {config.train.steps} steps x {config.train.batch_size} pairs, lr {config.train.lr}, "
        f"{config.train.seeds} seeds x {config.train.episodes} episodes, fitness {config.train.fitness}.",
        f"Final evaluation (protocol `final`): {final.steps} steps x {final.batch_size} pairs at lr {final.lr} "
        f"from the SFT reference, return over {final.episodes} episodes from reset seeds {final.eval_seed}.., "
        f"fresh seeds {final.seed_list}; mean and std over seeds.",
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
