"""DPO and ORPO trained by the population trainer against the plain single-policy loop, on Hopper.

Same setting as paper_repro/bench_baselines.py (5120 pairs, SFT reference 1500 steps, 1500 Adam steps of
64 pairs at lr 3e-4, no clipping, greedy evaluation over 10 episodes from seed 10000; minibatch seed 1),
so the seed-1 column can be compared with its table. The population trains dpo and orpo x ``--seeds``
at once; the plain loop (``symloss.train.train_single``) trains seed 1 of each alone.

    python benchmarks/population_parity.py                       # noisy and clean, seeds 1 2 3
    python benchmarks/population_parity.py --variants clean --no-loop     # population only
"""

from __future__ import annotations

import argparse
import time

import torch

from symloss import bench
from symloss.objectives import dpo, orpo
from symloss.train import PopulationTrainer, TrainConfig, prepare_data, train_single

EVAL_SEED = 10_000


def run(variant: str, args: argparse.Namespace) -> list[str]:
    ds = bench.build_dataset("hopper", variant, seed=0)
    spec = bench.spec_for_dataset(ds, n_bins=11)
    reference = bench.load_reference(ds, spec, seed=0)
    data = prepare_data(ds, spec, reference, holdout_fraction=0.0)
    cfg = TrainConfig(steps=args.steps, batch_size=64, lr=3e-4, max_grad_norm=None, episodes=args.episodes,
                      eval_seed=EVAL_SEED, fitness="return")
    losses = [dpo(beta=0.1), orpo(lam=0.1)]
    start = time.perf_counter()
    result = PopulationTrainer(cfg).fit(losses, data, seeds=args.seeds)
    pop_s = time.perf_counter() - start
    sft, _ = bench.evaluate(spec, reference, "hopper", episodes=args.episodes, seed=EVAL_SEED)
    rows = []
    for p, loss in enumerate(losses):
        plain, loop_s = torch.tensor(float("nan")), float("nan")
        if not args.no_loop:
            start = time.perf_counter()
            params, _ = train_single(loss, data, cfg, seed=args.seeds[0])
            loop_s = time.perf_counter() - start
            plain, _ = bench.evaluate(spec, params, "hopper", episodes=args.episodes, seed=EVAL_SEED)
        per_seed = " / ".join(f"{v:.0f}" for v in result.fitness_per_seed[p].tolist())
        rows.append(f"| {variant} | {loss.name} | {sft.item():.0f} | {result.fitness_per_seed[p, 0]:.0f} | "
                    f"{plain.item():.0f} | {per_seed} | {result.fitness[p]:.0f} ± {result.fitness_std[p]:.0f} | "
                    f"{pop_s:.0f} s (all) / {loop_s:.0f} s |")
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["noisy", "clean"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--no-loop", action="store_true", help="skip the plain loop (population only)")
    args = parser.parse_args()
    print("| variant | loss | SFT ref | population, seed 1 | plain loop, seed 1 | population per seed | "
          "mean ± std over seeds | train time population / loop |")
    print("|---|---|---|---|---|---|---|---|")
    for variant in args.variants:
        run(variant, args)


if __name__ == "__main__":
    main()
