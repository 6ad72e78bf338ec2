"""Evaluation of a search generation: one simulator batch for all members against today's chunks of 4.

    python benchmarks/eval_speed.py [--quick] [--members 32] [--episodes 5] [--repeats 3] [--neighbour]

The members are a quick SFT reference (400 steps on 512 clean Hopper pairs) plus N(0, 0.02^2) noise, as in
``rollout_speed.py``; 32 members x 5 episodes is one generation of the default search (16 candidates x
2 seeds). Variants, timed in turn in the same run (min / median / max of ``--repeats``):

- ``chunks of 4, before``: the evaluation before one-batch scoring, rebuilt here from public pieces: one
  ``BatchSim`` per chunk of 4 members, a policy forward for every member at every step, one slice per thread;
- ``chunks of 4``: ``episode_returns`` per chunk of 4 members (skips members whose episodes all ended);
- ``one batch``: ``episode_returns`` for all members at once (what ``PopulationTrainer.fit`` now does);
- ``one batch, 1 slice/thread``: the same with ``BatchSim(slices_per_thread=1)``.

Every variant must return the same returns to the bit; the script checks it. ``--neighbour`` repeats the
table with a one-core busy-loop neighbour (started and stopped by this script).
"""

from __future__ import annotations

import argparse
import os
from unittest import mock

import numpy as np
import torch
from _load import condition, load_line, spread, timed
from rollout_speed import make_members

from symloss.bench import BatchSim, act, env_info, episode_returns


def returns_before(spec, params, episodes: int, chunk: int, threads: int) -> np.ndarray:
    """The chunked evaluation before this change: every member's forward at every step, one slice per thread."""
    info, out = env_info("hopper"), []
    n_all = params["W0"].shape[0]
    for lo in range(0, n_all, chunk):
        members = {k: v[lo:lo + chunk] for k, v in params.items()}
        n = members["W0"].shape[0]
        sim = BatchSim("hopper", n * episodes, threads=threads, slices_per_thread=1)
        obs, total = sim.reset(np.tile(np.arange(episodes), n)), np.zeros(n * episodes)
        torch_threads = torch.get_num_threads()
        torch.set_num_threads(1 if sim.threads > 1 else torch_threads)
        try:
            while not sim.done.all():
                o = torch.from_numpy(obs).float().view(n, episodes, info.obs_dim)
                obs, reward, _ = sim.step(act(spec, members, o).reshape(n * episodes, -1).double().numpy())
                total += reward
        finally:
            sim.close()
            torch.set_num_threads(torch_threads)
        out.append(total.reshape(n, episodes))
    return np.concatenate(out)


def chunked(spec, params, episodes: int, chunk: int, threads: int) -> np.ndarray:
    n = params["W0"].shape[0]
    return np.concatenate([episode_returns(spec, {k: v[lo:lo + chunk] for k, v in params.items()}, "hopper",
                                           episodes=episodes, threads=threads) for lo in range(0, n, chunk)])


def one_slice(spec, params, episodes: int, threads: int) -> np.ndarray:
    real = BatchSim

    def sim(*args, **kw):
        return real(*args, **{**kw, "slices_per_thread": 1})

    with mock.patch("symloss.bench._evaluate.BatchSim", sim):
        return episode_returns(spec, params, "hopper", episodes=episodes, threads=threads)


def table(spec, params, args: argparse.Namespace, neighbour: bool) -> None:
    threads = args.threads or min(16, len(os.sched_getaffinity(0)))
    variants = {
        "chunks of 4, before": lambda: returns_before(spec, params, args.episodes, 4, threads),
        "chunks of 4": lambda: chunked(spec, params, args.episodes, 4, threads),
        "one batch": lambda: episode_returns(spec, params, "hopper", episodes=args.episodes, threads=threads),
        "one batch, 1 slice/thread": lambda: one_slice(spec, params, args.episodes, threads),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    ref = None
    with condition(neighbour):
        print(f"\n{'one-core neighbour' if neighbour else 'no neighbour'}; {load_line()} (start)")
        for _ in range(args.repeats):
            for name, fn in variants.items():
                seconds, returns = timed(fn)
                times[name].append(seconds)
                ref = returns if ref is None else ref
                assert np.array_equal(returns, ref), f"{name}: returns differ from the first variant's"
        print(f"{load_line()} (end)")
    base = min(times["chunks of 4, before"])
    print(f"{'variant':<28} {'seconds min / median / max':>28} {'speed-up (min)':>15}")
    for name, values in times.items():
        print(f"{name:<28} {spread(values):>28} {base / min(values):>14.2f}x")
    print(f"returns bit-identical across variants: yes ({ref.size} episodes, mean {ref.mean():.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=32)
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="simulator threads (default: one per CPU)")
    parser.add_argument("--neighbour", action="store_true", help="also measure with a one-core busy neighbour")
    parser.add_argument("--quick", action="store_true", help="16 members, 2 repeats")
    args = parser.parse_args()
    if args.quick:
        args.members, args.repeats = 16, 2
    spec, params = make_members(args.members)
    print(f"Hopper, {args.members} members x {args.episodes} episodes, greedy; torch {torch.__version__}")
    table(spec, params, args, neighbour=False)
    if args.neighbour:
        table(spec, params, args, neighbour=True)


if __name__ == "__main__":
    main()
