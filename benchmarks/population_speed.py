"""Candidate-training speed: the batched population trainer against a Python loop over separate models.

Both do the same work: P policies (Hopper shape: obs 11, act 3, 11 bins, 64x64 tanh MLP, 50-step
segments), each trained with its own zoo loss for ``--steps`` steps on minibatches of ``--batch-size``
pairs with per-model Adam and gradient clipping. The loop trains model after model with
``symloss.train.train_single`` (torch.optim.Adam, clip_grad_norm_). Data are synthetic (same shapes as
the benchmark's), so the timing measures training only; no fitness is computed.

    python benchmarks/population_speed.py                 # CPU table, P in {1, 8, 64}; CUDA table if a GPU
    python benchmarks/population_speed.py --no-cpu --cuda-sizes 1 64 256 1024 4096 --steps 20
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import math
import sys
import time
from pathlib import Path

import torch

from symloss.bench import TokenPolicySpec, init_params
from symloss.objectives import LOSSES
from symloss.train import PopulationTrainer, PreferenceData, TrainConfig, random_pair_tensors, train_single

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
LINES: list[str] = []

ZOO = ("dpo", "orpo", "ipo", "simpo", "cdpo", "rdpo", "hinge", "discopop", "ta_mpo")


def say(line: str) -> None:
    """Print a line of the tables and keep it for ``--write``."""
    print(line, flush=True)
    LINES.append(line)


def hopper_like_data(n_pairs: int = 5120, seg_len: int = 50, seed: int = 0) -> PreferenceData:
    """Random preference pairs with Hopper's shapes and a random reference policy."""
    gen = torch.Generator().manual_seed(seed)
    spec = TokenPolicySpec(obs_dim=11, act_dim=3, n_bins=11, hidden=(64, 64))
    tensors = random_pair_tensors(spec, n_pairs, seg_len, min_length=10, generator=gen)
    return PreferenceData.from_tensors(spec, init_params(spec, 1, gen), tensors, holdout_fraction=0.0)


def no_fitness(spec, params, context) -> torch.Tensor:
    """Skip scoring: the benchmark times training only."""
    return torch.zeros(params["W0"].shape[0])


def losses_for(p: int) -> list:
    return [LOSSES[ZOO[i % len(ZOO)]]() for i in range(p)]


def time_batched(data: PreferenceData, cfg: TrainConfig, p: int) -> tuple[float, float]:
    """(wall, process CPU) seconds to train P members at once."""
    trainer, losses = PopulationTrainer(cfg), losses_for(p)
    wall, cpu = time.perf_counter(), time.process_time()
    trainer.fit(losses, data, seeds=1)
    if cfg.device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - wall, time.process_time() - cpu


def time_loop(data: PreferenceData, cfg: TrainConfig, p: int) -> tuple[float, float]:
    """(wall, process CPU) seconds to train P separate models one after the other."""
    losses = losses_for(p)
    wall, cpu = time.perf_counter(), time.process_time()
    for loss in losses:
        train_single(loss, data, cfg, seed=0)
    return time.perf_counter() - wall, time.process_time() - cpu


def best_of(fn, repeats: int, *args) -> tuple[float, float]:
    """Fastest (wall, CPU) of ``repeats`` runs: the least disturbed by other jobs on a shared machine."""
    runs = [fn(*args) for _ in range(repeats)]
    return min(r[0] for r in runs), min(r[1] for r in runs)


def cpu_table(args: argparse.Namespace) -> None:
    data = hopper_like_data()
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, fitness=no_fitness, device="cpu",
                      max_members_per_chunk=args.max_chunk, threads=torch.get_num_threads())  # as labelled
    warm = TrainConfig(steps=2, batch_size=4, fitness=no_fitness)
    time_batched(data, warm, len(ZOO))  # compile the losses, import torch.optim: not part of the timing
    time_loop(data, warm, len(ZOO))
    say(f"CPU, {torch.get_num_threads()} threads, steps={args.steps}, batch_size={args.batch_size} pairs, "
          f"best of {args.repeats}; steps/s = member-steps per second (wall clock; CPU time in brackets)")
    say(f"{'P':>5} {'batched steps/s':>22} {'loop steps/s':>22} {'ratio wall':>11} {'ratio CPU':>10}")
    for p in args.sizes:
        batched, loop = best_of(time_batched, args.repeats, data, cfg, p), best_of(time_loop, args.repeats, data, cfg, p)
        work = p * args.steps
        cells = [f"{work / batched[0]:.1f} ({work / batched[1]:.1f})", f"{work / loop[0]:.1f} ({work / loop[1]:.1f})"]
        say(f"{p:>5} {cells[0]:>22} {cells[1]:>22} {loop[0] / batched[0]:>10.2f}x {loop[1] / batched[1]:>9.2f}x")


def cuda_table(args: argparse.Namespace) -> None:
    if not torch.cuda.is_available():
        say("CUDA: skipped (no GPU)")
        return
    data = hopper_like_data().to("cuda")
    warm = TrainConfig(steps=2, batch_size=4, fitness=no_fitness, device="cuda")
    time_loop(data, warm, len(ZOO))
    say(f"CUDA ({torch.cuda.get_device_name()}), steps={args.steps}, batch_size={args.batch_size} pairs; eager and "
        f"CUDA-graph (TrainConfig.cuda_graph) batched steps; loop = the Python loop over separate models on the GPU")
    say(f"{'P':>5} {'eager ms/step':>14} {'graph ms/step':>14} {'graph member-steps/s':>21} {'loop steps/s':>13} "
        f"{'graph/loop':>11} {'peak GiB':>9}")
    for p in args.cuda_sizes:
        cells = []
        for graph in (False, True):
            if not graph and p > args.cuda_eager_max:
                cells.append(math.nan)
                continue
            cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, fitness=no_fitness, device="cuda",
                              cuda_graph=graph)
            time_batched(data, dataclasses.replace(cfg, steps=6), p)  # warm up these shapes
            torch.cuda.reset_peak_memory_stats()
            cells.append(time_batched(data, cfg, p)[0])
        peak = torch.cuda.max_memory_allocated() / 2**30
        loop = ["-", "-"]
        if p <= args.cuda_loop_max:
            loop_s, _ = time_loop(data, TrainConfig(steps=args.steps, batch_size=args.batch_size, fitness=no_fitness,
                                                    device="cuda"), p)
            loop = [f"{p * args.steps / loop_s:.0f}", f"{loop_s / cells[1]:.1f}x"]
        say(f"{p:>5} {1000 * cells[0] / args.steps:>14.2f} {1000 * cells[1] / args.steps:>14.2f} "
            f"{p * args.steps / cells[1]:>21.0f} {loop[0]:>13} {loop[1]:>11} {peak:>9.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="training steps per model")
    parser.add_argument("--batch-size", type=int, default=32, help="pairs per minibatch (search budget: 32)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 8, 64], help="P on CPU")
    parser.add_argument("--cuda-sizes", type=int, nargs="+", default=[1, 64, 256, 1024], help="P on CUDA")
    parser.add_argument("--cuda-eager-max", type=int, default=1024, help="largest P timed without CUDA graphs")
    parser.add_argument("--cuda-loop-max", type=int, default=64, help="largest P timed with the loop on CUDA")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads of both the trainer and the loop (default: torch's)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per cell on CPU; the fastest counts")
    parser.add_argument("--max-chunk", type=int, default=None, help="max_members_per_chunk of the batched run")
    parser.add_argument("--no-cpu", action="store_true", help="skip the CPU table")
    parser.add_argument("--write", action="store_true", help="append the tables to benchmarks/RESULTS.md")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if not args.no_cpu:
        cpu_table(args)
    cuda_table(args)
    if args.write:
        machine = torch.cuda.get_device_name() if torch.cuda.is_available() else "2-core CPU, no GPU"
        with RESULTS.open("a") as f:
            f.write(f"\n## Population training speed ({datetime.date.today().isoformat()})\n\nMachine: {machine} "
                    f"(shared with other jobs). Command: `python {' '.join(sys.argv)}`\n\n```\n"
                    + "\n".join(LINES) + "\n```\n")


if __name__ == "__main__":
    main()
