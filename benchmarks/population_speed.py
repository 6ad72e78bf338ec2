"""Candidate-training speed: the batched population trainer against a Python loop over separate models.

Both do the same work: P policies (Hopper shape: obs 11, act 3, 11 bins, 64x64 tanh MLP, 50-step
segments), each trained with its own zoo loss for ``--steps`` steps on minibatches of ``--batch-size``
pairs with per-model Adam and gradient clipping. The loop trains model after model with
``symloss.train.train_single`` (torch.optim.Adam, clip_grad_norm_). Data are synthetic (same shapes as
the benchmark's), so the timing measures training only; no fitness is computed.

    python benchmarks/population_speed.py                 # CPU table, P in {1, 8, 64}; CUDA table if a GPU
    python benchmarks/population_speed.py --cuda-sizes 1 64 256 1024 --steps 50
"""

from __future__ import annotations

import argparse
import time

import torch

from symloss.bench import TokenPolicySpec, init_params
from symloss.objectives import LOSSES
from symloss.train import PopulationTrainer, PreferenceData, TrainConfig, train_single

ZOO = ("dpo", "orpo", "ipo", "simpo", "cdpo", "rdpo", "hinge", "discopop", "ta_mpo")


def hopper_like_data(n_pairs: int = 5120, seg_len: int = 50, seed: int = 0) -> PreferenceData:
    """Random preference pairs with Hopper's shapes and a random reference policy."""
    gen = torch.Generator().manual_seed(seed)
    spec = TokenPolicySpec(obs_dim=11, act_dim=3, n_bins=11, hidden=(64, 64))
    tensors = {}
    for side in ("chosen", "rejected"):
        tensors[f"{side}_obs"] = torch.randn(n_pairs, seg_len, spec.obs_dim, generator=gen)
        tensors[f"{side}_bins"] = torch.randint(0, spec.n_bins, (n_pairs, seg_len, spec.act_dim), generator=gen)
        length = torch.randint(10, seg_len + 1, (n_pairs,), generator=gen)
        steps = torch.arange(seg_len)[None] < length[:, None]
        tensors[f"{side}_mask"] = steps.repeat_interleave(spec.act_dim, 1)
        tensors[f"{side}_return"] = torch.randn(n_pairs, generator=gen)
    return PreferenceData.from_tensors(spec, init_params(spec, 1, gen), tensors, holdout_fraction=0.0)


def no_fitness(spec, params, context) -> torch.Tensor:
    """Skip scoring: the benchmark times training only."""
    return torch.zeros(params["W0"].shape[0])


def losses_for(p: int) -> list:
    return [LOSSES[ZOO[i % len(ZOO)]]() for i in range(p)]


def time_batched(data: PreferenceData, cfg: TrainConfig, p: int) -> float:
    """Seconds to train P members at once."""
    trainer = PopulationTrainer(cfg)
    start = time.perf_counter()
    trainer.fit(losses_for(p), data, seeds=1)
    if cfg.device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def time_loop(data: PreferenceData, cfg: TrainConfig, p: int) -> float:
    """Seconds to train P separate models one after the other."""
    start = time.perf_counter()
    for loss in losses_for(p):
        train_single(loss, data, cfg, seed=0)
    return time.perf_counter() - start


def cpu_table(args: argparse.Namespace) -> None:
    data = hopper_like_data()
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, fitness=no_fitness, device="cpu")
    time_batched(data, TrainConfig(steps=2, batch_size=4, fitness=no_fitness), len(ZOO))  # compile the losses
    print(f"CPU, {torch.get_num_threads()} threads, steps={args.steps}, batch_size={args.batch_size} pairs")
    print(f"{'P':>5} {'batched steps/s':>16} {'loop steps/s':>13} {'ratio':>7}")
    for p in args.sizes:
        batched, loop = time_batched(data, cfg, p), time_loop(data, cfg, p)
        rate_b, rate_l = p * args.steps / batched, p * args.steps / loop
        print(f"{p:>5} {rate_b:>16.1f} {rate_l:>13.1f} {rate_b / rate_l:>6.2f}x", flush=True)


def cuda_table(args: argparse.Namespace) -> None:
    if not torch.cuda.is_available():
        print("CUDA: skipped (no GPU)")
        return
    data = hopper_like_data().to("cuda")
    print(f"CUDA ({torch.cuda.get_device_name()}), steps={args.steps}, batch_size={args.batch_size} pairs")
    print(f"{'P':>5} {'ms/step':>9} {'member-steps/s':>15}")
    for p in args.cuda_sizes:
        cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, fitness=no_fitness, device="cuda")
        time_batched(data, TrainConfig(steps=2, batch_size=4, fitness=no_fitness, device="cuda"), p)  # warm up
        seconds = time_batched(data, cfg, p)
        print(f"{p:>5} {1000 * seconds / args.steps:>9.2f} {p * args.steps / seconds:>15.0f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="training steps per model")
    parser.add_argument("--batch-size", type=int, default=32, help="pairs per minibatch (search budget: 32)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 8, 64], help="P on CPU")
    parser.add_argument("--cuda-sizes", type=int, nargs="+", default=[1, 64, 256, 1024], help="P on CUDA")
    parser.add_argument("--no-cpu", action="store_true", help="skip the CPU table")
    args = parser.parse_args()
    if not args.no_cpu:
        cpu_table(args)
    cuda_table(args)


if __name__ == "__main__":
    main()
