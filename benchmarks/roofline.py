"""The trainer against this CPU's sgemm peak: achieved GFLOP/s, fraction of peak, batched vs loop, in one run.

    python benchmarks/roofline.py            # P = 64, batch 32 and 64, 1 and all threads (a few minutes)
    python benchmarks/roofline.py --quick    # fewer steps and repeats, loop at P = 16 (about a minute quiet)

1. sgemm peak: ``torch.mm`` of two ``--peak-size`` square float32 matrices, at 1 thread and at all CPUs.
2. FLOPs of one member-step, counted from the model's sizes (Hopper: obs 11, 64x64 tanh, 3 x 11 bins):
   per row (one token step of a chosen or rejected segment; 2 x batch x 50 rows per member-step)
       forward  2 sum_i in_i out_i,   weight gradients  2 sum_i in_i out_i,   input gradients 2 sum_{i>0} in_i out_i
   (40,064 FLOPs per row for Hopper). Bias terms, the softmax and the losses are not counted.
3. The trainer's own GEMMs: each of the kernel's batched GEMMs (``symloss.bench._token_kernel``) timed alone at
   the trainer's chunk size and rows; their sum per member-step is the time a GEMM-only step would take.
4. The policy pass alone: ``token_logps`` forward + backward for one chunk.
5. The trainer: ``PopulationTrainer.fit`` at P members (one seed, zoo losses, synthetic Hopper-shaped data,
   no fitness), and the plain loop over separate models (``train_single``) at the same batch: their ratio.

Every timing is the fastest of ``--repeats`` rounds in which each measurement runs once, in turn (so all see the
same load; the least disturbed round counts); the peak is the larger of a measurement at the start and one at
the end. The load average is printed before and after. achieved GFLOP/s = FLOPs per member-step x
member-steps per second.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import torch
from _load import load_line
from population_speed import ZOO, hopper_like_data, losses_for, no_fitness

from symloss.bench import token_logps
from symloss.objectives import LOSSES
from symloss.train import PopulationTrainer, TrainConfig, train_single

SEG_LEN = 50


def best(fn, repeats: int) -> float:
    """Fastest wall time of ``repeats`` calls (after one warm-up call)."""
    return interleaved({"fn": fn}, repeats)["fn"]


def interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Fastest wall time of each function over ``repeats`` rounds that call every function once, in turn
    (so that all of them see the same load); one warm-up round first."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for round_ in range(repeats + 1):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            if round_:
                times[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in times.items()}


def sgemm_peak(size: int, threads: int, repeats: int) -> float:
    """GFLOP/s of a ``size`` x ``size`` float32 matmul with ``threads`` threads."""
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    return 2 * size**3 / best(lambda: a @ b, repeats) / 1e9


def flops_per_row(sizes: tuple[int, ...]) -> int:
    """Forward, weight-gradient and input-gradient GEMM FLOPs of one row (module docstring)."""
    pairs = list(zip(sizes[:-1], sizes[1:]))
    return 2 * sum(i * o for i, o in pairs) * 2 + 2 * sum(i * o for i, o in pairs[1:])


def kernel_gemms(sizes: tuple[int, ...]) -> list[tuple[str, int, int]]:
    """The kernel's GEMMs of one step, as in ``symloss.bench._token_kernel``: (kind, in, out) per GEMM."""
    out = []
    for i, (k, o) in enumerate(zip(sizes[:-1], sizes[1:])):
        out += [("forward", k, o), ("dW", k, o)] + ([("dh", k, o)] if i > 0 else [])
    return out


def operands(kind: str, n: int, k: int, o: int, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The kernel's operands: U = V^T S, dL/dV = S D^T, dL/dS = V[:in] D (V [n, k+1, o], S [n, k+1, rows])."""
    if kind == "forward":
        return torch.randn(n, k + 1, o).transpose(1, 2), torch.randn(n, k + 1, rows)
    if kind == "dW":
        return torch.randn(n, k + 1, rows), torch.randn(n, o, rows).transpose(1, 2)
    return torch.randn(n, k + 1, o)[:, :k], torch.randn(n, o, rows)


def gemm_calls(sizes: tuple[int, ...], n: int, rows: int) -> dict[str, Callable[[], object]]:
    """One call per kernel GEMM at the chunk's shapes, keyed by a description."""
    calls = {}
    for kind, k, o in kernel_gemms(sizes):
        a, b = operands(kind, n, k, o, rows)
        calls[f"{kind} {k} x {o}: {tuple(a.shape)} x {tuple(b.shape)}"] = lambda a=a, b=b: torch.bmm(a, b)
    return calls


def policy_pass(data, n: int, batch: int) -> Callable[[], object]:
    """``token_logps`` forward + backward on one chunk's shared minibatch."""
    params = {k: v.expand(n, *v.shape[1:]).clone().requires_grad_(True) for k, v in data.reference.items()}
    idx = torch.arange(batch)
    obs = torch.cat([data.train["chosen_obs"][idx], data.train["rejected_obs"][idx]])
    bins = torch.cat([data.train["chosen_bins"][idx], data.train["rejected_bins"][idx]])
    weights = torch.randn(n, 2 * batch, SEG_LEN * data.spec.act_dim)

    def run():
        logp = token_logps(data.spec, params, obs, bins)
        return torch.autograd.grad((logp * weights).sum(), list(params.values()))

    return run


def trainer_run(data, p: int, batch: int, steps: int, threads: int) -> Callable[[], object]:
    """``PopulationTrainer.fit`` of P members (one seed, zoo losses) with ``threads`` threads."""
    trainer = PopulationTrainer(TrainConfig(steps=steps, batch_size=batch, fitness=no_fitness, threads=threads))
    losses = losses_for(p)
    return lambda: trainer.fit(losses, data, seeds=1)


def loop_run(data, p: int, batch: int, steps: int) -> Callable[[], object]:
    """The plain loop over separate models (``train_single``) at the caller's thread count."""
    cfg = TrainConfig(steps=steps, batch_size=batch, fitness=no_fitness)
    losses = [LOSSES[ZOO[i % len(ZOO)]]() for i in range(p)]
    return lambda: [train_single(loss, data, cfg, seed=0) for loss in losses]


def one_thread(fn: Callable[[], object]) -> Callable[[], object]:
    """``fn`` run with one torch thread (the caller's count restored)."""
    def run():
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn()
        finally:
            torch.set_num_threads(before)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=64, help="P of the trainer")
    parser.add_argument("--loop-members", type=int, default=64, help="models of the plain loop")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peak-size", type=int, default=4096)
    parser.add_argument("--quick", action="store_true", help="steps 5, repeats 2, loop P = 16, peak size 2048")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.repeats, args.loop_members, args.peak_size = 5, 2, 16, 2048
    caller = torch.get_num_threads()
    cpus = len(os.sched_getaffinity(0))
    print(f"torch {torch.__version__}; {cpus} CPUs; {load_line()} (start)")
    peak = {1: sgemm_peak(args.peak_size, 1, args.repeats), cpus: sgemm_peak(args.peak_size, cpus, args.repeats)}

    data = hopper_like_data()
    sizes = data.spec.sizes
    per_row = flops_per_row(sizes)
    warm = TrainConfig(steps=2, batch_size=4, fitness=no_fitness, threads=1)
    PopulationTrainer(warm).fit(losses_for(len(ZOO)), data)  # compile the zoo once, outside the timings
    rows = []
    for batch in args.batch_sizes:
        n = PopulationTrainer(TrainConfig(batch_size=batch)).chunk_size(data, args.members, 1)
        m = 2 * batch * SEG_LEN
        flops = per_row * m
        gemms = {name: one_thread(fn) for name, fn in gemm_calls(sizes, n, m).items()}
        fns = {**gemms, "pass": one_thread(policy_pass(data, n, batch)),
               "loop": one_thread(loop_run(data, args.loop_members, batch, args.steps))}
        fns.update({f"trainer {t}": trainer_run(data, args.members, batch, args.steps, t) for t in sorted({1, cpus})})
        times = interleaved(fns, args.repeats)
        print(f"\nbatch {batch} pairs: {m} rows per member-step, {flops / 1e6:.1f} MFLOP ({per_row} per row); "
              f"chunks of {n} members; the kernel's GEMMs at 1 thread (nominal FLOPs):")
        for name in gemms:
            kind, k, o = name.split(":")[0].replace(" x", "").split()
            print(f"    {name:<48} {2 * n * int(k) * int(o) * m / times[name] / 1e9:7.1f} GFLOP/s")
        gemm_s = sum(times[name] for name in gemms) / n
        loop = args.loop_members * args.steps / times["loop"]
        for threads in sorted({1, cpus}):
            rate = args.members * args.steps / times[f"trainer {threads}"]
            rows.append((batch, threads, rate, flops, gemm_s, times["pass"] / n, loop))
    peak = {t: max(v, sgemm_peak(args.peak_size, t, args.repeats)) for t, v in peak.items()}  # least disturbed
    print(f"\n{load_line()} (end)")
    print(f"sgemm peak ({args.peak_size}^2): {peak[1]:.1f} GFLOP/s at 1 thread, {peak[cpus]:.1f} at {cpus} threads")
    print(f"\nP = {args.members} (loop: {args.loop_members} models), {args.steps} steps, fastest of {args.repeats}")
    print(f"{'batch':>5} {'threads':>7} {'member-steps/s':>14} {'GFLOP/s':>8} {'of peak':>8} {'GEMMs only':>10} "
          f"{'policy pass':>11} {'rest':>6} {'vs loop':>8}")
    for batch, threads, rate, flops, gemm_s, pass_s, loop in rows:
        step_s = 1 / rate
        split = "" if threads != 1 else f"{gemm_s / step_s:>10.0%} {(pass_s - gemm_s) / step_s:>11.0%} " \
                                        f"{(step_s - pass_s) / step_s:>6.0%}"
        ratio = f"{rate / loop:>7.2f}x" if threads == 1 else ""
        print(f"{batch:>5} {threads:>7} {rate:>14.1f} {rate * flops / 1e9:>8.1f} {rate * flops / 1e9 / peak[threads]:>8.2f} "
              f"{split:<30} {ratio}")
    print("GEMMs only / policy pass / rest: shares of the 1-thread member-step time spent in the kernel's GEMMs "
          "(timed alone), in the rest of the policy pass (softmax, sigmoid, their backward), and outside it "
          "(losses, optimiser, minibatch gathering, dispatch). The GEMMs alone would reach "
          + ", ".join(f"{flops / gemm_s / 1e9 / peak[1]:.2f} of peak at batch {batch}"
                      for batch, threads, _, flops, gemm_s, _, _ in rows if threads == 1) + ".")
    torch.set_num_threads(caller)


if __name__ == "__main__":
    main()
