"""Compare protocol-reliability runs on the losses they share (issue 12).

Each run is a ``--json`` file of ``benchmarks/protocol_reliability.py`` (every per-episode return of every loss,
seed and start state, per scoring rule). Runs on disjoint seeds and start states, with different protocols, are
compared on the losses common to all of them, so a protocol's figures are not moved by a different set of losses:

- per run and rule: split-half rank reliability (Spearman rho between disjoint seed-and-state halves), the pooled
  seeds for a 10% difference (as in protocol_reliability), the seeds for losses that move (mean more than 10%
  from the untrained reference: median and quartiles over losses of 2 (z_0.975 + z_0.8)^2 Var_s / (0.1 mean)^2)
  and their median sd over seeds (over soups for a seed-soup rule, whose seed counts are G x its soups);
  with ``--states N``, that count projected from each loss's variance components to N start states per policy
  and to infinitely many (sigma^2_seed + sigma^2_res / N: how far more episodes could take it), and to N states
  drawn per seed (sigma^2_seed + (sigma^2_state + sigma^2_res) / N: the count for a difference that holds on fresh
  start states); with
  ``--first-states N``, every figure from each run's first N start states only; with ``--subset K``, an in-run
  fidelity: the Spearman rho of K seeds' loss means (on half the start states) against the other seeds' (on the
  other half), i.e. how the same training on K seeds ranks against a protocol on the rest;
- the Spearman rho (and Pearson r) between the runs' loss means for every pair of (run, rule): do two protocols,
  on disjoint seeds, rank the losses alike? And of the pairs of losses more than 10% apart in either run, how many
  both runs order alike (near-ties left out: the differences a protocol sized for 10% claims to resolve);
- with ``--g-study``: each run's variance components of loss means and the reliability G they predict, beside its
  split-half in Pearson and Spearman (protocol_reliability's ``g_study``);
- with ``--pool``: runs with start states drawn per seed pooled along their seeds, and how two disjoint parts of k
  seeds each rank the losses (k = 1 .. S/2; at k = a run's S, the agreement of two whole runs, averaged over
  splits);
- with ``--losses RULE``: every loss's mean +- sd over seeds in each run under RULE and the Welch t-test of each
  run's per-seed means against the first run's (e.g. runs on `clean`, `noisy`, `mixed`: does a loss lose on the
  hard variants?), the best loss of each run in bold.

    R=benchmarks/studies/protocol_reliability     # the recorded runs of benchmarks/RESULTS.md
    python benchmarks/protocol_compare.py b64=$R/hopper-mixed-b64-ema-s9000.json.gz \
        b128=$R/hopper-mixed-b128-ema-s11000.json.gz --zoo-only
    python benchmarks/protocol_compare.py a.json b.json --rules greedy,greedy+ema
    python benchmarks/protocol_compare.py clean=c.json noisy=n.json mixed=m.json --zoo-only --losses mean+ema
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import re
import sys
import warnings
from itertools import combinations
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from protocol_reliability import (  # noqa: E402
    G_STUDY_HEADER,
    g_coefficient,
    g_study,
    g_study_cells,
    moving_losses,
    seeds_for_moving,
    seeds_needed,
    split_half,
)


def load_run(spec: str) -> tuple[str, dict]:
    """``LABEL=PATH`` or ``PATH`` (label: the file's name before its first dot) -> (label, the run's JSON, plain or
    gzipped ``.json.gz``); one clear line if unreadable."""
    label, _, path = spec.rpartition("=")
    label = label or Path(path).name.split(".")[0]
    try:
        raw = Path(path).read_bytes()
        run = json.loads(gzip.decompress(raw) if path.endswith(".gz") else raw)
    except (OSError, ValueError) as err:  # ValueError: bad JSON, bad UTF-8
        raise SystemExit(f"error: {path}: cannot read a protocol_reliability JSON ({err}); write one with "
                         f"`protocol_reliability.py --json {path}`") from None
    if not isinstance(run, dict) or not {"names", "final"} <= set(run):
        raise SystemExit(f"error: {path}: not a protocol_reliability JSON (needs 'names' and 'final'); write one "
                         f"with `protocol_reliability.py --json {path}`")
    return label, run


def common_losses(runs: dict[str, dict], zoo_only: bool) -> list[str]:
    """Loss names present in every run, in the first run's order; ``zoo_only`` drops random maps (``m=...``)."""
    first, *rest = runs.values()
    names = [n for n in first["names"] if all(n in r["names"] for r in rest)]
    return [n for n in names if not (zoo_only and n.startswith("m="))]


def first_states(run: dict, n: int, label: str) -> dict:
    """The run with every rule's returns cut to its first ``n`` start states (the same states in every rule:
    ``reset(seed=eval_seed + e)``, e < n); one clear line if a rule has fewer than ``n`` or ``n < 2``."""
    final = {}
    for rule, entry in run["final"].items():
        r = np.asarray(entry["returns"], dtype=float)
        if n < 2 or r.shape[2] < n:
            raise SystemExit(f"error: --first-states {n}: run {label!r} rule {rule!r} has {r.shape[2]} start states; "
                             f"give 2 <= N <= {r.shape[2]}")
        final[rule] = {**entry, "returns": r[..., :n]}
    return {**run, "final": final}


def thin_checkpoints(run: dict, every: int, label: str) -> dict:
    """The run with, for every average over K stored checkpoints (``greedy+ema@avg8``), the average over every
    ``every``-th of them counted back from the last one too (``greedy+ema@avg4of8``: steps 378, 452, 526, 600 of
    341, 378, ..., 600): what the same trainings score with K / ``every`` checkpoints, on the same start states.
    One clear line if ``every`` does not divide a K or no rule averages checkpoints."""
    final = dict(run["final"])
    for rule in run["final"]:
        match = re.fullmatch(r"(.+)@avg(\d+)(~soup\d+)?", rule)
        if match is None:
            continue
        head, k, tail = match.group(1), int(match.group(2)), match.group(3) or ""
        steps = sorted(int(m.group(1)) for key in run["final"]
                       if (m := re.fullmatch(re.escape(head) + r"@(\d+)" + re.escape(tail), key)))
        parts = [f"{head}@{step}{tail}" for step in steps] + [head + tail]
        if len(parts) != k or every < 2 or k % every:
            raise SystemExit(f"error: --thin {every}: run {label!r} rule {rule!r} averages {k} checkpoints "
                             f"({len(parts)} stored); give a divisor of {k} that is >= 2")
        kept = parts[::-1][::every]
        stacked = np.mean([np.asarray(run["final"][p]["returns"], dtype=float) for p in kept], axis=0)
        final[f"{head}@avg{k // every}of{k}{tail}"] = {**run["final"][rule], "returns": stacked}
    if len(final) == len(run["final"]):
        raise SystemExit(f"error: --thin {every}: run {label!r} stores no average over checkpoints; run "
                         "protocol_reliability with a protocol of checkpoints=K")
    return {**run, "final": final}


def sides_cell(r: np.ndarray, ref: float, per_row: int) -> str:
    """`` median (count) / median (count) |``: the moving losses' seeds for 10%, above and below the reference."""
    above, below = (seeds_for_moving(r, ref, per_row=per_row, side=side) for side in ("above", "below"))
    return f" {above[0]:.1f} ({above[3]}) / {below[0]:.1f} ({below[3]}) |"


def returns_of(run: dict, rule: str, names: list[str]) -> np.ndarray:
    """The run's per-episode returns ``[P, S, E]`` under ``rule``, rows in the order of ``names``."""
    r = np.asarray(run["final"][rule]["returns"], dtype=float)
    return r[[run["names"].index(n) for n in names]]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="protocol_reliability JSON files, each optionally LABEL=PATH")
    parser.add_argument("--rules", default=None, help="scoring rules to compare (default: every rule of each run)")
    parser.add_argument("--zoo-only", action="store_true", help="only the zoo's losses (drop random maps m=...)")
    parser.add_argument("--states", type=int, default=None, metavar="N",
                        help="also project the moving losses' seeds for 10%% to N start states per policy, to "
                             "infinitely many (the episode-free floor), and to N states drawn per seed, from each "
                             "loss's variance components")
    parser.add_argument("--first-states", type=int, default=None, metavar="N",
                        help="use only each run's first N start states (compare a run with many start states to "
                             "runs with fewer on equal footing, or check the --states projection against it)")
    parser.add_argument("--thin", type=int, default=None, metavar="J",
                        help="also score every J-th of a run's K late checkpoints, counted back from the last "
                             "(rule@avg{K/J}of{K}): fewer checkpoints on the same trainings and start states")
    parser.add_argument("--subset", type=int, default=None, metavar="K",
                        help="also rank each run's loss means from K of its seeds on half its start states against "
                             "the other seeds on the other half (an in-run fidelity: the same training on K seeds)")
    parser.add_argument("--sides", action="store_true",
                        help="also split the moving losses' seeds for 10%% into those above the reference (the "
                             "contenders) and those below it: median (count) of each")
    parser.add_argument("--g-study", action="store_true",
                        help="also print each run's variance components of loss means and the reliability G they "
                             "predict (protocol_reliability.g_study), beside its split-half in Pearson and Spearman")
    parser.add_argument("--pool", action="store_true",
                        help="also pool the runs' seeds (runs with start states drawn per seed, disjoint seeds, the "
                             "same number of states) and print how two disjoint k-seed parts of the pool rank the "
                             "losses, for k = 1 .. S/2: the split-half at the size of whole runs")
    parser.add_argument("--losses", default=None, metavar="RULE",
                        help="also print each loss's mean in every run under RULE, Welch p against the first run")
    args = parser.parse_args(argv)
    runs = dict(load_run(spec) for spec in args.runs)
    if len(runs) < len(args.runs):
        raise SystemExit("error: two runs share a label; name them LABEL=PATH")
    if args.first_states is not None:
        runs = {label: first_states(run, args.first_states, label) for label, run in runs.items()}
    if args.thin is not None:
        runs = {label: thin_checkpoints(run, args.thin, label) for label, run in runs.items()}
    names = common_losses(runs, args.zoo_only)
    if len(names) < 3:
        raise SystemExit(f"error: the runs share {len(names)} losses; at least 3 are needed to rank (run them on "
                         "the same zoo)")
    wanted = args.rules.split(",") if args.rules else None
    rng = np.random.default_rng(0)
    print(f"{len(names)} losses common to {len(runs)} runs" + (" (zoo only)" if args.zoo_only else ""))
    extra = "" if args.states is None else (f" moving, projected to {args.states} states / episode-free / "
                                            f"{args.states} states drawn per seed |")
    extra += "" if args.subset is None else f" {args.subset} seeds vs the rest, rho (mean, p10) |"
    extra += " moving above / below the reference: median (count) |" if args.sides else ""
    print("\n| run | rule | seeds x states | split-half rho (mean, p10) | seeds for 10%, pooled | seeds for 10%, "
          "moving losses: median (p25-p75), count | median sd over seeds, moving | reference |" + extra)
    print("|---|---|---|---|---|---|---|---|" + "---|" * ((args.states is not None) + (args.subset is not None)
                                                         + args.sides))
    means: dict[str, np.ndarray] = {}
    for label, run in runs.items():
        for rule in run["final"]:
            if wanted and rule not in wanted:
                continue
            r = returns_of(run, rule, names)
            ref = float(run["final"][rule]["reference"])
            g = int(run["final"][rule].get("seeds_per_unit", 1))  # a seed soup's row stands for g seeds
            sh = split_half(r, rng, per_seed=states_per_seed(run))
            pooled = seeds_needed(r, ref, per_row=g)[0]
            moving = seeds_for_moving(r, ref, per_row=g)
            moved = moving_losses(r, ref)
            sd = float(np.median(r[moved].mean(2).std(1, ddof=1))) if moved.any() else math.nan
            means[f"{label}:{rule}"] = r.mean((1, 2))
            rows = f"{r.shape[1]}" if g == 1 else f"{r.shape[1]} soups of {g}"
            print(f"| {label} | {rule} | {rows} x {r.shape[2]} | {sh[0]:.3f}, {sh[1]:.3f} | {pooled:.1f} | "
                  f"{moving[0]:.1f} ({moving[1]:.1f}-{moving[2]:.1f}), {moving[3]} | {sd:.0f} | {ref:.0f} |"
                  + ("" if args.states is None else
                     f" {seeds_for_moving(r, ref, per_row=g, episodes=args.states)[0]:.1f} / "
                     f"{seeds_for_moving(r, ref, per_row=g, episodes=math.inf)[0]:.1f} / "
                     f"{seeds_for_moving(r, ref, per_row=g, episodes=args.states, per_seed_states=True)[0]:.1f} |")
                  + ("" if args.subset is None else subset_cell(r, args.subset, rng, states_per_seed(run)))
                  + (sides_cell(r, ref, g) if args.sides else ""))
    if not means:
        raise SystemExit(f"error: no run has the rules {wanted}; rules are e.g. greedy, mean, greedy+ema")
    if args.g_study:
        print_g_studies(runs, names, wanted, rng)
    print("\nSpearman rho of the loss means between runs (disjoint seeds when the runs' seeds differ); Pearson r; "
          "of the pairs of losses more than 10% apart in either run, those both runs order alike:")
    for a, b in combinations(means, 2):
        if a.split(":")[0] != b.split(":")[0]:
            alike, pairs = separated_agreement(means[a], means[b])
            print(f"- {a} vs {b}: {stats.spearmanr(means[a], means[b]).statistic:.3f}; Pearson "
                  f"{np.corrcoef(means[a], means[b])[0, 1]:.3f}; {alike} of {pairs} pairs")
    if args.pool:
        print_pooled(runs, names, wanted, rng)
    if args.losses:
        print_loss_table(runs, names, args.losses)


def states_per_seed(run: dict) -> bool:
    """Whether the run drew its start states per seed (``--states per-seed`` or a protocol's ``start_states``)."""
    args = run.get("args", {})
    return args.get("states") == "per-seed" or "start_states=per_seed" in str(args.get("protocol", ""))


def print_g_studies(runs: dict[str, dict], names: list[str], wanted: list[str] | None,
                    rng: np.random.Generator) -> None:
    """The g-study of every (run, rule) on the common losses (:func:`protocol_reliability.g_study_cells`)."""
    print("\n| run | rule | states " + G_STUDY_HEADER)
    print("|---|---|---|---|---|---|---|")
    for label, run in runs.items():
        for rule in run["final"]:
            if wanted and rule not in wanted:
                continue
            r = returns_of(run, rule, names)
            if r.shape[1] < 2 or r.shape[2] < 2:
                continue
            per_seed = states_per_seed(run)
            cells, _ = g_study_cells(r, rng, per_seed=per_seed)
            print(f"| {label} | {rule} | {'per seed' if per_seed else 'shared'} {cells}")


def pooled_returns(runs: dict[str, dict], names: list[str], rule: str) -> np.ndarray:
    """The runs' returns under ``rule`` on the common losses, their seeds side by side: ``[P, sum S, E]``. Only for
    runs that drew their start states per seed (so every seed of the pool played states of its own) and share E;
    one clear line otherwise."""
    shared = [label for label, run in runs.items() if not states_per_seed(run)]
    if shared:
        raise SystemExit(f"error: --pool: run {shared[0]!r} shares its start states among its seeds, so its seeds "
                         "cannot be split from each other's states; pool runs made with start states per seed")
    parts = [returns_of(run, rule, names) for run in runs.values()]
    if len({r.shape[2] for r in parts}) > 1:
        raise SystemExit(f"error: --pool: the runs play {sorted({r.shape[2] for r in parts})} start states per "
                         "seed; pool runs with the same number (or cut them with --first-states N)")
    return np.concatenate(parts, axis=1)


def print_pooled(runs: dict[str, dict], names: list[str], wanted: list[str] | None,
                 rng: np.random.Generator) -> None:
    """For each rule every run has: two disjoint parts of k pooled seeds each (all E states of each seed), their
    Spearman rho (mean, p10) and Pearson r over random draws, and the reliability G the pooled g-study predicts."""
    rules = [rule for rule in next(iter(runs.values()))["final"]
             if all(rule in run["final"] for run in runs.values()) and (not wanted or rule in wanted)]
    for rule in rules:
        r = pooled_returns(runs, names, rule)
        v = g_study(r)
        print(f"\npooled {' + '.join(runs)} under {rule}: {r.shape[1]} seeds x {r.shape[2]} start states per seed; "
              "two disjoint parts of k seeds each:")
        print("| k seeds per part | Spearman rho (mean, p10) | Pearson r | G (model) |")
        print("|---|---|---|---|")
        for k in range(1, r.shape[1] // 2 + 1):
            rho = split_half(r, rng, per_seed=True, half=k)
            pearson = split_half(r, rng, per_seed=True, half=k, pearson=True)[0]
            print(f"| {k} | {rho[0]:.3f}, {rho[1]:.3f} | {pearson:.3f} | "
                  f"{g_coefficient(v, k, r.shape[2], per_seed=True):.3f} |")


def separated_agreement(a: np.ndarray, b: np.ndarray, separation: float = 0.1) -> tuple[int, int]:
    """(pairs ordered alike, pairs) over the pairs of losses whose means differ by more than ``separation`` x the
    larger one in either run: of the differences a protocol sized for 10% claims to resolve (in one run or the
    other), how many does the other run order the same way? Pairs within 10% in both runs, near-ties no such
    protocol orders, are left out (they cap a rank correlation)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)

    def apart(m: np.ndarray, i: int, j: int) -> bool:
        return abs(m[i] - m[j]) > separation * max(abs(m[i]), abs(m[j]))

    alike = pairs = 0
    for i, j in combinations(range(len(a)), 2):
        if apart(a, i, j) or apart(b, i, j):
            pairs += 1
            alike += bool((a[i] - a[j]) * (b[i] - b[j]) > 0)
    return alike, pairs


def subset_cell(r: np.ndarray, k: int, rng: np.random.Generator, per_seed: bool = False) -> str:
    """The table cell of ``--subset k``: split_half with k seeds against the other S - k."""
    if not 1 <= k < r.shape[1]:
        return " - |"
    rho = split_half(r, rng, subset=k, per_seed=per_seed)
    return f" {rho[0]:.3f}, {rho[1]:.3f} |"


def print_loss_table(runs: dict[str, dict], names: list[str], rule: str) -> None:
    """Per loss: mean +- sd over seeds of the per-seed mean return in each run (best of a run in bold), the Welch
    t-test p of every later run against the first; the last row is each run's untrained reference."""
    missing = [label for label, run in runs.items() if rule not in run["final"]]
    if missing:
        raise SystemExit(f"error: --losses {rule}: runs {missing} have no such rule; they have "
                         f"{sorted(runs[missing[0]]['final'])}")
    per_seed = {label: returns_of(run, rule, names).mean(2) for label, run in runs.items()}  # [P, S]
    best = {label: int(np.argmax(x.mean(1))) for label, x in per_seed.items()}
    first, *later = runs
    print(f"\nper-loss means under {rule!r} (mean +- sd over seeds; Welch t-test against {first!r}):")
    print("| loss | " + " | ".join(runs) + " | " + " | ".join(f"{b} vs {first} (Welch p)" for b in later) + " |")
    print("|---|" + "---|" * (len(runs) + len(later)))
    for i, name in enumerate(names):
        cells = []
        for label, x in per_seed.items():
            bold = "**" if best[label] == i else ""
            cells.append(f"{bold}{x[i].mean():.0f} +- {x[i].std(ddof=1):.0f}{bold}")
        with warnings.catch_warnings():  # a loss that never moves the policy has (nearly) equal seeds
            warnings.simplefilter("ignore", RuntimeWarning)
            ps = [stats.ttest_ind(per_seed[b][i], per_seed[first][i], equal_var=False).pvalue for b in later]
        print(f"| {name} | " + " | ".join(cells) + " | " + " | ".join(f"{p:.2g}" for p in ps) + " |")
    refs = " | ".join(f"{float(run['final'][rule]['reference']):.0f}" for run in runs.values())
    print(f"| untrained reference | {refs} | " + " | ".join("-" for _ in later) + " |")


if __name__ == "__main__":
    main()
