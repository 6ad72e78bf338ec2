"""Expression-engine speed: compiled vs handwritten Torch, compile time and check time per candidate.

Run: .venv/bin/python benchmarks/expr_speed.py [--pairs 1000000] [--repeats 7] [--candidates 300]

Prints three tables:
1. forward+backward time on N pairs for compiled symloss functions and handwritten Torch doing the same
   math, with the ratio compiled / handwritten (goal <= 1.10);
2. time to turn a new random candidate (DEAP tree) into a callable (tree -> SymPy -> compiled), median ms;
3. validity-check time per candidate (check_mirror), median ms, and the share of random trees rejected.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import time

import torch
import torch.nn.functional as F
from deap import gp

import symloss as sl
from symloss.expr import (
    check_mirror,
    clear_cache,
    compile_expr,
    make_pset,
    parse_formula,
    stabilise,
    tree_to_sympy,
)


def timed_pair(first, second, repeats: int) -> tuple[float, float]:
    """Median wall times (ms) of two functions, interleaved so machine-load drift hits both alike."""
    first(), second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, out in ((first, times[0]), (second, times[1])):
            start = time.perf_counter()
            fn()
            out.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times[0]), statistics.median(times[1])


def fwd_bwd(fn, *inputs):
    def run():
        xs = [x.detach().requires_grad_(True) for x in inputs]
        fn(*xs).sum().backward()
    return run


def expression_cases(n: int, gen: torch.Generator):
    u = -torch.rand(n, generator=gen) * 20 - 1e-3
    z = torch.randn(n, generator=gen) * 3
    orpo_map = compile_expr(stabilise(parse_formula("u - log(1 - exp(u))", ["u"])), ["u"])
    dpo_link = compile_expr(parse_formula("softplus(-z)", ["z"]), ["z"])
    disco = sl.objectives.discopop().fn("link")

    def hand_log1mexp(x):
        x = x.clamp(max=-1e-12)
        near = torch.log(-torch.expm1(x.clamp(min=-0.6931471805599453)))
        far = torch.log1p(-torch.exp(x.clamp(max=-0.6931471805599453)))
        return torch.where(x > -0.6931471805599453, near, far)

    def hand_disco(x):
        return F.softplus(-x) * torch.sigmoid(-x * 20) + torch.exp(-x + F.logsigmoid(x * 20))

    return [
        ("link softplus(-z)", fwd_bwd(dpo_link, z), fwd_bwd(lambda x: F.softplus(-x), z)),
        ("mirror u - log1mexp(u)", fwd_bwd(orpo_map, u), fwd_bwd(lambda x: x - hand_log1mexp(x), u)),
        ("link discopop", fwd_bwd(lambda x: disco(x, 0.0), z), fwd_bwd(hand_disco, z)),
    ]


def loss_cases(n: int, gen: torch.Generator):
    xs = [-torch.rand(n, 1, generator=gen) * 50 for _ in range(4)]
    dpo = sl.objectives.dpo(beta=0.1)

    def compiled(cw, rl, rcw, rrl):
        return dpo(sl.LogpBatch(cw, rl, ref_chosen_logps=rcw, ref_rejected_logps=rrl), validate=False).loss

    def hand(cw, rl, rcw, rrl):
        delta = (cw.sum(-1) - rcw.sum(-1)) - (rl.sum(-1) - rrl.sum(-1))
        return -F.logsigmoid(0.1 * delta)

    return [("MirrorLoss dpo (full, masks)", fwd_bwd(compiled, *xs), fwd_bwd(hand, *xs))]


def compile_times(n: int, seed: int) -> tuple[list[float], list[float], int]:
    pset = make_pset("mirror")
    random.seed(seed)
    compile_ms, check_ms, rejected = [], [], 0
    for _ in range(n):
        tree = gp.PrimitiveTree(gp.genHalfAndHalf(pset, 1, 6))
        clear_cache()
        start = time.perf_counter()
        expr = tree_to_sympy(tree)
        with contextlib.suppress(ValueError):
            compile_expr(expr, ["u"])
        compile_ms.append((time.perf_counter() - start) * 1e3)
        start = time.perf_counter()
        rejected += not check_mirror(expr)
        check_ms.append((time.perf_counter() - start) * 1e3)
    return compile_ms, check_ms, rejected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--candidates", type=int, default=300)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    print(f"forward+backward on {args.pairs:,} pairs, float32, {args.threads} threads, median of {args.repeats}")
    print(f"| {'case':34s} | compiled ms | handwritten ms | ratio |")
    print(f"|{'-' * 36}|-------------|----------------|-------|")
    for name, compiled, hand in [*expression_cases(args.pairs, gen), *loss_cases(args.pairs, gen)]:
        c, h = timed_pair(compiled, hand, args.repeats)
        print(f"| {name:34s} | {c:11.2f} | {h:14.2f} | {c / h:5.2f} |")
    compile_ms, check_ms, rejected = compile_times(args.candidates, seed=1)
    print(f"\nper new random mirror candidate ({args.candidates} DEAP trees, depth 1-6):")
    print("| step | median ms | p90 ms |\n|---|---|---|")
    for name, xs in (("tree -> SymPy -> compiled", compile_ms), ("check_mirror", check_ms)):
        p90 = statistics.quantiles(xs, n=10)[-1]
        print(f"| {name} | {statistics.median(xs):.2f} | {p90:.2f} |")
    print(f"\nrejected by check_mirror: {rejected}/{args.candidates} ({100 * rejected / args.candidates:.0f}%)")


if __name__ == "__main__":
    main()
