"""Rollout speed: symloss's batched evaluator vs Gymnasium SyncVectorEnv, and dataset build time.

    python benchmarks/rollout_speed.py [--members 64] [--write]

1. Evaluation throughput for N policies x 1 episode on Hopper: ``symloss.bench.episode_returns``
   (one batched policy forward per step, direct ``mj_step``) against ``gymnasium.vector.SyncVectorEnv``
   with N Hopper-v5 envs and a per-step Torch forward of the same stacked policies. Both run each
   env's first episode from Gymnasium's ``reset(seed=0)``; env-steps/s counts those episodes' steps.
   The policies are an SFT reference (behaviour cloning on a small clean dataset) plus small noise, so
   that episodes are long.
2. Build time of the Hopper ``clean`` dataset (5120 pairs) from the committed checkpoints (no cache).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from symloss.bench import act, build_dataset, episode_returns, fit_reference, make_env, spec_for_dataset

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def make_members(n: int, seed: int = 0):
    """A quick SFT reference on 512 clean Hopper pairs, copied ``n`` times with N(0, 0.02^2) noise."""
    with tempfile.TemporaryDirectory() as tmp:
        ds = build_dataset("hopper", "clean", n_pairs=512, cache_dir=tmp, progress=False)
        spec = spec_for_dataset(ds)
        ref = fit_reference(spec, ds, steps=400, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    return spec, {k: v.expand(n, *v.shape[1:]) + 0.02 * torch.randn(n, *v.shape[1:], generator=gen)
                  for k, v in ref.items()}


def time_symloss(spec, params, threads: int | None = 1) -> tuple[float, int]:
    """Seconds and env steps of ``episode_returns`` (N members x 1 episode) with ``threads`` sim threads."""
    start = time.perf_counter()
    _, lengths = episode_returns(spec, params, "hopper", episodes=1, seed=0, return_lengths=True, threads=threads)
    return time.perf_counter() - start, int(lengths.sum())


def time_gymnasium(spec, params) -> tuple[float, int]:
    """Seconds and first-episode env steps of SyncVectorEnv with a per-step Torch policy."""
    n = params["W0"].shape[0]
    start = time.perf_counter()
    venv = gym.vector.SyncVectorEnv([lambda: make_env("hopper") for _ in range(n)])
    obs, _ = venv.reset(seed=[0] * n)
    alive, steps = np.ones(n, dtype=bool), 0
    while alive.any():
        a = act(spec, params, torch.from_numpy(obs).float().view(n, 1, -1))[:, 0].double().numpy()
        obs, _, term, trunc, _ = venv.step(a)
        steps += int(alive.sum())
        alive &= ~(term | trunc)
    venv.close()
    return time.perf_counter() - start, steps


def time_build() -> float:
    """Seconds to build Hopper ``clean`` with 5120 pairs into an empty cache."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        build_dataset("hopper", "clean", cache_dir=tmp, progress=False)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=64, help="N policies (one episode each)")
    parser.add_argument("--repeats", type=int, default=2, help="timed repeats (best is reported)")
    parser.add_argument("--write", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    spec, params = make_members(args.members)
    ours = min((time_symloss(spec, params) for _ in range(args.repeats)), key=lambda r: r[0])
    threaded = min((time_symloss(spec, params, None) for _ in range(args.repeats)), key=lambda r: r[0])
    base = min((time_gymnasium(spec, params) for _ in range(args.repeats)), key=lambda r: r[0])
    build_s = time_build()
    sps_ours, sps_base = ours[1] / ours[0], base[1] / base[0]
    rows = [
        "| measurement | env steps | seconds | env-steps/s |",
        "|---|---|---|---|",
        f"| symloss evaluator, N={args.members} x 1 episode | {ours[1]} | {ours[0]:.2f} | {sps_ours:,.0f} |",
        f"| Gymnasium SyncVectorEnv + per-step torch, N={args.members} | {base[1]} | {base[0]:.2f} | {sps_base:,.0f} |",
        f"| speed-up, one thread each (goal >= 1.5x) | | | **{sps_ours / sps_base:.2f}x** |",
        f"| symloss evaluator, simulator threads = cores ({len(os.sched_getaffinity(0))}) | {threaded[1]} | "
        f"{threaded[0]:.2f} | {threaded[1] / threaded[0]:,.0f} ({threaded[1] / threaded[0] / sps_base:.2f}x) |",
        f"| Hopper `clean` dataset build, 5120 pairs (goal < 120 s) | | {build_s:.1f} | |",
    ]
    table = "\n".join(rows)
    print(table)
    if args.write:
        head = "# Benchmark results\n" if not RESULTS.exists() else ""
        section = (
            f"{head}\n## Rollout speed ({datetime.date.today().isoformat()})\n\n"
            f"Machine: 2-core CPU, no GPU ({platform.processor() or platform.machine()}), torch threads 1. "
            f"Command: `python benchmarks/rollout_speed.py --members {args.members} --write`\n\n{table}\n"
        )
        with RESULTS.open("a") as f:
            f.write(section)


if __name__ == "__main__":
    main()
