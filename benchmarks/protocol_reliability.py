"""How reliably does a training protocol rank preference losses? (issue 12)

For one env/variant, trains a set of diverse losses (the zoo with hyperparameter variants, plus random mirror
maps that are valid on the data's u-range) with the "final" protocol on S training seeds, scores every trained
policy on E fresh start states under each action rule, and prints:

- variance components of the return per loss, from the two-way layout R[seed, start state]
  (sigma^2_seed, sigma^2_state, sigma^2_residual; medians over losses);
- split-half rank reliability: Spearman rho between the loss means on two disjoint halves of the seeds
  (mean and 10th percentile over random splits; with shared start states the episodes are split too, so the
  halves share nothing; with states drawn per seed the seed halves already play disjoint states, and each half
  keeps all E of its seeds' states);
- training seeds per loss to detect a 10% difference at alpha 0.05 and power 0.8,
  n = 2 (z_{0.975} + z_{0.8})^2 Var(per-seed score) / (0.1 mean)^2 (pooled over losses), and the paired form
  (z_{0.975} + z_{0.8})^2 Var(per-seed difference) / (0.1 mean)^2 on common seeds and start states, and the
  episode-free limit 2 (z_{0.975} + z_{0.8})^2 sigma^2_seed / (0.1 mean)^2 (infinitely many start states);
  and, per loss among those that move (mean more than 10% from the untrained reference), from its own spread:
  the comparisons between training losses need these (median and quartiles), not the pooled figure;
- for each cheaper fidelity (trained on other seeds and scored on other start states): Spearman rho of its
  loss means against the final protocol's, and its cost relative to the final protocol;
- the cost per loss of the final protocol (wall seconds, all its seeds).

    python benchmarks/protocol_reliability.py --env hopper --dataset noisy            # the study (~1 h on 2 cores)
    python benchmarks/protocol_reliability.py --quick                                 # a smoke run (~1 min)
    python benchmarks/protocol_reliability.py --protocol final:ema=0.995 ...          # also score averaged weights
    python benchmarks/protocol_reliability.py --protocol final:checkpoints=4 ...      # and 4 late checkpoints
"""

from __future__ import annotations

import argparse
import atexit
import gzip
import json
import math
import random
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import sympy as sp
import torch
from deap import gp
from scipy import stats

from symloss import bench
from symloss.expr import check_mirror, compile_expr, make_pset, tree_to_sympy
from symloss.objectives import LOSSES, MirrorLoss
from symloss.train import PopulationTrainer, TrainConfig, data_u_ranges, data_u_samples, seed_soup

Z2 = (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) ** 2

ZOO_GRID: dict[str, list[dict]] = {
    "dpo": [{"beta": b} for b in (0.03, 0.1, 0.3, 1.0, 3.0)],
    "cdpo": [{"beta": 0.1, "label_smoothing": e} for e in (0.1, 0.3)],
    "rdpo": [{"beta": 0.1, "label_smoothing": 0.1}],
    "ipo": [{"beta": b} for b in (0.1, 1.0)],
    "hinge": [{"beta": b} for b in (0.1, 1.0)],
    "simpo": [{}],
    "orpo": [{"lam": lam} for lam in (0.1, 1.0)],
    "discopop": [{}],
    "ropo": [{}],
    "holder_dpo": [{}],
    "sympo": [{}],
    "repo": [{}],
    "drdpo": [{}],
}
"""Zoo losses x hyperparameter variants in the study (names missing from the zoo are skipped)."""


def zoo_losses(quick: bool) -> list[tuple[str, MirrorLoss]]:
    out = []
    for name, grid in ZOO_GRID.items():
        if name not in LOSSES:
            continue
        for kwargs in grid[:1] if quick else grid:
            label = name + "".join(f" {k}={v:g}" for k, v in kwargs.items())
            out.append((label, LOSSES[name](**kwargs)))
    return out[:4] if quick else out


def random_valid_maps(n: int, u_range: tuple[float, float], *, seed: int, beta: float = 0.1,
                      u_data: torch.Tensor | None = None, attempts: int = 4000) -> list[tuple[str, MirrorLoss]]:
    """``n`` random mirror maps (DEAP trees, depth 1-4) valid on ``u_range`` and distinct in shape.

    Shapes are compared on 64 points: the quantiles (0.5% .. 99.5%) of ``u_data`` (the data's own u, from
    :func:`~symloss.train.data_u_samples`) when given, else a grid over ``u_range``. A map is skipped when it is
    flat there (its spread is below 1e-6 of its size, or 1e-9: it never moves the policy, e.g. m = e^{u/2} at
    u ~ -100) or has the shape of another map up to constant and scale, DPO's m(u) = u included (another DPO beta,
    or m = logsigmoid(u), which is u in float32 at such u)."""
    pset = make_pset("mirror")
    rng_state = random.getstate()
    random.seed(seed)
    if u_data is None:
        grid = torch.linspace(u_range[0], u_range[1], 64, dtype=torch.float64)
    else:
        grid = torch.quantile(u_data.double().flatten(), torch.linspace(0.005, 0.995, 64, dtype=torch.float64))
    out, shapes = [], [(grid - grid.mean()) / grid.std()]  # DPO's m(u) = u: a random map must differ from it
    try:
        for _ in range(attempts):
            if len(out) >= n:
                break
            tree = gp.PrimitiveTree(gp.genHalfAndHalf(pset, 1, 4))
            try:
                expr = tree_to_sympy(tree)
                if not check_mirror(expr, u_range=u_range):
                    continue
                loss = MirrorLoss(mirror=expr, beta=beta, name=f"m={expr}")
            except Exception:  # noqa: BLE001 (a rejected random tree is skipped)
                continue
            values = compile_expr(loss.mirror, ["u"])(grid).detach().double()
            if not torch.isfinite(values).all():
                continue
            spread = values.std()
            if spread < max(1e-9, 1e-6 * float(values.abs().max())):
                continue  # flat where it is compared: on the data's u, it would not train
            shape = (values - values.mean()) / spread
            if any(float((shape - s).abs().max()) < 0.05 for s in shapes):
                continue  # the same map up to constant and scale (e.g. another DPO beta)
            shapes.append(shape)
            out.append((f"m={sp.sstr(expr)}", loss))
    finally:
        random.setstate(rng_state)
    return out


@dataclass
class Scores:
    """Per-episode returns ``[P, S, E]`` of one protocol under one action rule, and the training wall time."""

    returns: np.ndarray
    train_s: float
    eval_s: float


def seeds_per_unit(rule: str) -> int:
    """Training seeds behind one scored policy of ``rule``: G for a seed soup (``greedy~soup4``,
    ``greedy+ema~soup2@avg4``), else 1."""
    match = re.search(r"~soup(\d+)", rule)
    return int(match.group(1)) if match else 1


def note_scored(rule: str, seconds: float) -> None:
    """One progress line on stderr per scored rule (the scoring of a full study takes tens of minutes)."""
    print(f"scored {rule} in {seconds:.0f} s", file=sys.stderr, flush=True)


def train_and_score(losses: list[MirrorLoss], data, protocol: TrainConfig, seeds: list[int],
                    actions: list[str], episodes: int, eval_seed: int,
                    soups: tuple[int, ...] = (), scored_only: bool = False) -> dict[str, Scores]:
    """Train ``losses x seeds`` once, then score the policies under every action rule on the same episodes.

    With ``protocol.ema`` set, both weights of each trained policy are scored: the last ones under the rule's
    name (``greedy``) and the moving average under ``greedy+ema`` (the same training, so a paired comparison).
    With ``protocol.checkpoints = K > 1``, the scored weights at each earlier checkpoint too (``greedy@375``),
    and two averages over the K checkpoints: ``greedy@avgK`` (every checkpoint on all start states, K x the
    scoring) and ``greedy@mixK`` (start state e scored on checkpoint e mod K: the scoring cost of one).
    For each G in ``soups``, the :func:`~symloss.train.seed_soup` of each G seeds' scored weights too (``greedy~soupG``; returns
    ``[P, S / G, E]``: one row per soup); with checkpoints, the soups of every checkpoint as well and their two
    averages (``greedy+ema~soupG@avgK``: what ``TrainConfig(soup=G, checkpoints=K)`` scores, and ``@mixK``).
    ``scored_only``: score only the weights the protocol reports: not the last weights when ``ema`` is set, and
    with ``soups`` not each seed either (only the soups of the scored weights, 1/G of the scoring); for
    environments such as TLA where scoring costs as much as training. With ``protocol.start_states = "per_seed"``,
    each seed's row of every loss (a soup: its first seed's) plays its own E start states,
    ``reset(seed=eval_seed + s E + e)`` (:func:`~symloss.bench.per_seed_starts`), instead of every row the same E."""
    trainer = PopulationTrainer(replace(protocol, fitness=lambda spec, params, ctx: torch.zeros(params["W0"].shape[0])))
    start = time.perf_counter()
    result = trainer.fit(losses, data, seeds=seeds, progress=True)  # a bar on stderr: the runs last an hour
    train_s = time.perf_counter() - start
    scored = "" if protocol.ema is None else "+ema"
    last = [("", result.params)] if protocol.ema is None else [("", result.last_params), ("+ema", result.params)]
    steps = protocol.checkpoint_steps
    earlier = ([] if result.checkpoints is None else  # the scored weights at every earlier checkpoint
               [(f"{scored}@{step}", params) for step, params in zip(steps[:-1], result.checkpoints[:-1])])
    weights = last + earlier
    out = {}

    def score(rule: str, params: dict[str, torch.Tensor], action: str, rows: int) -> None:
        start = time.perf_counter()
        # a soup plays the block of its first seed
        starts = (bench.per_seed_starts(eval_seed, np.tile(np.asarray(seeds)[::len(seeds) // rows], len(losses)),
                                        episodes) if protocol.start_states == "per_seed" else None)
        r = bench.episode_returns(data.spec, params, data.env, episodes=episodes, seed=eval_seed,
                                  action=action, temperature=protocol.temperature, starts=starts,
                                  horizon=protocol.horizon)
        out[rule] = Scores(np.asarray(r).reshape(len(losses), rows, episodes), train_s, time.perf_counter() - start)
        note_scored(rule, out[rule].eval_s)

    def average_checkpoints(rule: str) -> None:  # rule: the scored weights' name, e.g. greedy+ema or greedy+ema~soup2
        k = len(steps)
        at = rule.find("~")
        head, tail = (rule, "") if at < 0 else (rule[:at], rule[at:])
        parts = [out[f"{head}@{step}{tail}"] for step in steps[:-1]] + [out[rule]]
        stacked = np.stack([p.returns for p in parts])  # [K, P, rows, E]
        eval_s = sum(p.eval_s for p in parts)
        out[f"{rule}@avg{k}"] = Scores(stacked.mean(0), train_s, eval_s)
        mixed = stacked[np.arange(episodes) % k, :, :, np.arange(episodes)]  # [E, P, rows]
        out[f"{rule}@mix{k}"] = Scores(np.moveaxis(mixed, 0, -1), train_s, eval_s / k)

    if scored_only:
        weights = [] if soups else weights[len(last) - 1:]
    for suffix, params in weights:
        for action in actions:
            score(action + suffix, params, action, len(seeds))
    if result.checkpoints is not None and weights:
        for action in actions:
            average_checkpoints(action + scored)
    souped_weights = (last[-1:] if scored_only else last) + earlier
    for size in soups:
        for suffix, params in souped_weights:
            souped = seed_soup(params, len(losses), len(seeds), size)
            for action in actions:
                score(f"{action}{suffix}~soup{size}", souped, action, len(seeds) // size)
        if result.checkpoints is not None:
            for action in actions:
                average_checkpoints(f"{action}{scored}~soup{size}")
    return out


def rule_name(protocol: TrainConfig) -> str:
    """The name :func:`train_and_score` gives the scores a protocol reports (``mean``, ``greedy+ema@avg4``,
    ``greedy+ema~soup2@avg4``)."""
    return (protocol.action + ("" if protocol.ema is None else "+ema")
            + ("" if protocol.soup == 1 else f"~soup{protocol.soup}")
            + ("" if protocol.checkpoints == 1 else f"@avg{protocol.checkpoints}"))


def base_rule(rule: str) -> str:
    """The action rule a scoring rule is built on: ``greedy+ema@avg4`` -> ``greedy`` (its reference and last weights)."""
    return rule.split("+")[0].split("@")[0].split("~")[0]


def parse_protocol(text: str, env: str | None = None) -> tuple[str, TrainConfig]:
    """``"final:seeds=2:episodes=8:action=mean"`` -> (the text, ``TrainConfig.from_spec(text, env=env)``: the
    preset with the environment's fields of ``ENV_PROTOCOL``, then the text's)."""
    return text, TrainConfig.from_spec(text, env=env)


def check_json_path(path: str | None) -> None:
    """Before any work: ``--json`` must name a new file in an existing folder (a study is never overwritten)."""
    if path is None:
        return
    if Path(path).exists():
        sys.exit(f"--json {path}: the file exists; give a new path (a stored study is never overwritten)")
    if not Path(path).resolve().parent.is_dir():
        sys.exit(f"--json {path}: folder {Path(path).resolve().parent} does not exist; create it or give another path")


def write_json(path: str, report: dict) -> None:
    """The study as JSON at ``path``, gzipped when the name ends in ``.gz`` (as protocol_compare reads it)."""
    data = json.dumps(report).encode()
    Path(path).write_bytes(gzip.compress(data) if path.endswith(".gz") else data)


def components(r: np.ndarray) -> dict[str, float]:
    """sigma^2 of seeds, start states and residual from ``R[s, e]`` (two-way ANOVA without replication)."""
    s, e = r.shape
    grand = r.mean()
    ms_seed = e * ((r.mean(1) - grand) ** 2).sum() / max(s - 1, 1)
    ms_state = s * ((r.mean(0) - grand) ** 2).sum() / max(e - 1, 1)
    resid = r - r.mean(1, keepdims=True) - r.mean(0, keepdims=True) + grand
    ms_res = (resid ** 2).sum() / max((s - 1) * (e - 1), 1)
    return {"seed": max(0.0, (ms_seed - ms_res) / e), "state": max(0.0, (ms_state - ms_res) / s), "res": ms_res}


def g_study(r: np.ndarray) -> dict[str, float]:
    """Variance components of loss means from ``R[p, s, e]`` (losses x seeds x start states, one return each):
    the random-effects ANOVA of a fully crossed p x s x e layout, negative estimates set to 0.

    ``p``: between losses (the signal); ``ps``: loss x seed (training chaos a loss's mean keeps); ``pe``: loss x
    start state; ``pse``: the residual. Seed and state main effects are common to every loss and leave the
    ranking alone, so they are not returned. From the mean squares MS_x:
    sigma^2_pse = MS_pse, sigma^2_ps = (MS_ps - MS_pse) / E, sigma^2_pe = (MS_pe - MS_pse) / S,
    sigma^2_p = (MS_p - MS_ps - MS_pe + MS_pse) / (S E). With start states drawn per seed (``--states per-seed``)
    the state index carries no shared state, so ``pe`` comes out near 0 and its share lands in ``pse``."""
    p, s, e = r.shape
    if min(p, s, e) < 2:
        raise ValueError(f"returns: shape {r.shape}; a g-study needs >= 2 losses, seeds and start states")
    grand = r.mean()
    yp, ys, ye = r.mean((1, 2)), r.mean((0, 2)), r.mean((0, 1))
    yps, ype, yse = r.mean(2), r.mean(1), r.mean(0)
    ms_p = s * e * ((yp - grand) ** 2).sum() / (p - 1)
    ms_ps = e * ((yps - yp[:, None] - ys[None, :] + grand) ** 2).sum() / ((p - 1) * (s - 1))
    ms_pe = s * ((ype - yp[:, None] - ye[None, :] + grand) ** 2).sum() / ((p - 1) * (e - 1))
    resid = (r - yps[:, :, None] - ype[:, None, :] - yse[None] + yp[:, None, None] + ys[None, :, None]
             + ye[None, None, :] - grand)
    ms_pse = (resid ** 2).sum() / ((p - 1) * (s - 1) * (e - 1))
    return {"p": max(0.0, (ms_p - ms_ps - ms_pe + ms_pse) / (s * e)), "ps": max(0.0, (ms_ps - ms_pse) / e),
            "pe": max(0.0, (ms_pe - ms_pse) / s), "pse": float(ms_pse)}


def g_coefficient(v: dict[str, float], seeds: int, states: int, *, per_seed: bool = False) -> float:
    """Reliability of a run's loss means (the share of their spread that is between losses) at ``seeds`` x
    ``states``, from :func:`g_study`'s components ``v``:
    G = sigma^2_p / (sigma^2_p + sigma^2_ps / S + sigma^2_pe / E + sigma^2_pse / (S E)) with states shared, and
    G = sigma^2_p / (sigma^2_p + sigma^2_ps / S + (sigma^2_pe + sigma^2_pse) / (S E)) with states drawn per seed.
    It is the expected Pearson correlation of two such runs' loss means; a rank correlation falls below it
    when losses bunch (near-ties reorder)."""
    state_part = (v["pe"] + v["pse"]) / (seeds * states) if per_seed else v["pe"] / states + v["pse"] / (seeds * states)
    error = v["ps"] / seeds + state_part
    return v["p"] / (v["p"] + error) if v["p"] + error > 0 else math.nan


def split_half(r: np.ndarray, rng: np.random.Generator, repeats: int = 100,
               subset: int | None = None, pearson: bool = False, per_seed: bool = False,
               half: int | None = None) -> tuple[float, float]:
    """Mean and 10th percentile of Spearman rho (``pearson``: Pearson r) between loss means on disjoint halves.

    The halves share nothing. With shared start states (every seed on the same E) they split the seeds and the
    start states: S/2 seeds x E/2 states each. With states drawn per seed (``per_seed``: seed s on its own block),
    disjoint seeds already play disjoint states, so only the seeds are split: S/2 seeds x E states each, the
    whole protocol's episodes per policy.

    With ``subset = k``: the first part is k seeds and the other all S - k seeds (each on its own half of the
    start states, or on its own blocks): how a k-seed protocol with the same training ranks against the rest (an
    in-run fidelity). With ``half = k`` (2k <= S): two disjoint parts of k seeds each, how two k-seed runs agree."""
    _, s, e = r.shape
    if half is not None and not 1 <= half <= s // 2:
        raise ValueError(f"half={half}: two disjoint parts of {half} seeds need 1 <= half <= {s // 2} ({s} seeds)")
    cut, end = (s // 2, 2 * (s // 2)) if subset is None else (subset, s)
    cut, end = (cut, end) if half is None else (half, 2 * half)
    rhos = []
    for _ in range(repeats):
        seeds, eps = rng.permutation(s), rng.permutation(e)
        first, second = (eps, eps) if per_seed else (eps[:e // 2], eps[e // 2:2 * (e // 2)])
        a = r[:, seeds[:cut]][:, :, first].mean((1, 2))
        b = r[:, seeds[cut:end]][:, :, second].mean((1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):  # a constant half: nan, dropped by nanmean
            rhos.append(float(np.corrcoef(a, b)[0, 1]) if pearson else stats.spearmanr(a, b).statistic)
    return float(np.nanmean(rhos)), float(np.nanpercentile(rhos, 10))


def seeds_needed(r: np.ndarray, reference: float, per_row: int = 1) -> tuple[float, float, float]:
    """(unpaired, paired, episode-free) seeds per loss for a 10% difference, pooled over losses scoring above
    reference/2. Episode-free: sigma^2_seed alone (the two-way layout's seed component), the limit with
    infinitely many start states per policy: what no evaluation-side lever (more or cheaper episodes, start
    states from the dataset) can go below. ``per_row``: training seeds behind one row of ``r`` (G for a seed
    soup); the counts are in training seeds."""
    per_seed = r.mean(2)  # [P, S]
    means = per_seed.mean(1)
    keep = np.where(means > 0.5 * reference)[0]
    if len(keep) < 2:
        return math.nan, math.nan, math.nan
    delta = 0.1 * float(np.median(means[keep]))
    unpaired = 2 * Z2 * float(np.median(per_seed[keep].var(1, ddof=1))) / delta ** 2
    diffs = [np.var(per_seed[a] - per_seed[b], ddof=1) for i, a in enumerate(keep) for b in keep[i + 1:]]
    paired = Z2 * float(np.median(diffs)) / delta ** 2
    seed_only = 2 * Z2 * float(np.median([components(r[i])["seed"] for i in keep])) / delta ** 2
    return per_row * unpaired, per_row * paired, per_row * seed_only


def moving_losses(r: np.ndarray, reference: float, *, moved: float = 0.1) -> np.ndarray:
    """Boolean mask ``[P]``: the losses whose mean return is more than ``moved`` x reference from the reference."""
    return np.abs(r.mean((1, 2)) - reference) > moved * abs(reference)


def seeds_for_moving(r: np.ndarray, reference: float, *, moved: float = 0.1, per_row: int = 1,
                     episodes: float | None = None, per_seed_states: bool = False,
                     side: str = "both") -> tuple[float, float, float, int]:
    """Seeds a 10% difference needs between losses that train, from each loss's own spread over seeds.

    Over the losses whose mean is more than ``moved`` x reference away from the untrained reference (a loss
    that leaves the policy where it is has no spread and flatters the pooled :func:`seeds_needed`):
    n_i = 2 (z_{0.975} + z_{0.8})^2 V_i / (0.1 mean_i)^2 per loss; returns (median, 25th, 75th percentile
    of n_i, number of such losses), NaNs if fewer than two losses move. ``per_row`` as in :func:`seeds_needed`.
    ``side``: ``both`` (every moving loss), ``above`` (those that beat the reference: the contenders a search
    looks for) or ``below`` (those that fall under it, where 10% of a collapsed mean is a small absolute step).

    V_i is the variance over seeds of the per-seed mean return, Var_s(R_i). With ``episodes = E'`` it is
    instead projected from the two-way components to E' start states per policy,
    V_i = sigma^2_seed,i + sigma^2_res,i / E' (the start-state effect is common to all seeds and cancels;
    ``math.inf``: the episode-free floor that no evaluation-side lever can go below). At the run's own E the
    projection equals Var_s(R_i) whenever the seed component's estimate is not clipped at zero.

    The shared projection holds the start-state set fixed: a loss's own reaction to those states is common to its
    seeds and counted nowhere, so the count says how many seeds resolve 10% *on these states*. With
    ``per_seed_states`` (each seed on its own E' states, :func:`~symloss.bench.per_seed_starts`), the state effect
    varies from seed to seed and is counted: V_i = sigma^2_seed,i + (sigma^2_state,i + sigma^2_res,i) / E', the
    count for a difference that holds on fresh start states. From a run whose states were drawn per seed, the state
    component is ~0 and the residual carries it, so both projections agree there.
    """
    per_seed = r.mean(2)  # [P, S]
    means = per_seed.mean(1)
    move = moving_losses(r, reference, moved=moved)
    if side not in ("both", "above", "below"):
        raise ValueError(f"side={side!r}: must be 'both', 'above' or 'below'")
    if side != "both":
        move &= (means > reference) if side == "above" else (means < reference)
    if move.sum() < 2:
        return math.nan, math.nan, math.nan, int(move.sum())
    if episodes is None:
        var = per_seed.var(1, ddof=1)[move]
    else:
        comps = [components(r[i]) for i in np.where(move)[0]]
        var = np.array([c["seed"] + (c["res"] + (c["state"] if per_seed_states else 0.0)) / episodes
                        for c in comps])
    n = per_row * 2 * Z2 * var / (0.1 * means[move]) ** 2
    return float(np.median(n)), float(np.percentile(n, 25)), float(np.percentile(n, 75)), int(move.sum())


def projected_states(episodes: int) -> tuple[float, ...]:
    """The start-state counts the seed projection is printed for: the run's own E, 2E, 4E, and infinity."""
    return (episodes, 2 * episodes, 4 * episodes, math.inf)


def print_projection(final: dict[str, dict], episodes: int) -> None:
    """Seeds for a 10% difference between losses that train, projected from the components to more start states
    per policy (:func:`seeds_for_moving` with ``episodes``): how far an evaluation-side lever can go."""
    states = projected_states(episodes)
    print("\nseeds for 10%, moving losses (median), projected from the variance components to E' start states "
          "per policy (shared: on this run's states; per seed: each seed on its own E' states, so the count holds "
          "on fresh states):")
    print("| rule | states | " + " | ".join(f"E' = {e:g}" if e < math.inf else "episode-free" for e in states) + " |")
    print("|---|---|" + "---|" * len(states))
    for rule, entry in final.items():
        for label, key in (("shared", "seeds_moving_projected"), ("per seed", "seeds_moving_per_seed_projected")):
            cells = [entry[key][str(e)][0] for e in states]
            print(f"| {rule} | {label} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")


G_STUDY_HEADER = ("| sd loss / loss x seed / loss x state / residual | G at the split-half's size: model, "
                  "Pearson, Spearman | G at S x E | G at 10 seeds: shared, per-seed states |")
"""The columns of :func:`g_study_cells`."""


def g_study_cells(r: np.ndarray, rng: np.random.Generator, *, per_seed: bool) -> tuple[str, dict[str, float]]:
    """The :data:`G_STUDY_HEADER` cells of one run's returns ``[P, S, E]`` and its :func:`g_study` components: the
    components' sds, the reliability G at the split-half's size beside the measured split-half (Pearson, Spearman:
    Spearman falls below Pearson where losses bunch), G at the run's size, and G at the final protocol's 10 seeds x
    E with states shared and drawn per seed (``per_seed``: the run drew them per seed, so the shared figure cannot
    be projected: the loss x state term is not separable from the residual)."""
    v = g_study(r)
    s, e = r.shape[1:]
    half = g_coefficient(v, s // 2, e if per_seed else e // 2, per_seed=per_seed)
    pearson = split_half(r, rng, pearson=True, per_seed=per_seed)[0]
    spearman = split_half(r, rng, per_seed=per_seed)[0]
    shared10 = "-" if per_seed else f"{g_coefficient(v, 10, e):.3f}"
    sds = " / ".join(f"{math.sqrt(v[k]):.0f}" for k in ("p", "ps", "pe", "pse"))
    cells = (f"| {sds} | {half:.3f}, {pearson:.3f}, {spearman:.3f} | {g_coefficient(v, s, e, per_seed=per_seed):.3f} | "
             f"{shared10}, {g_coefficient(v, 10, e, per_seed=True):.3f} |")
    return cells, v


def print_g_study(final: dict[str, Scores], report: dict[str, dict], args: argparse.Namespace,
                  rng: np.random.Generator) -> None:
    """Per rule, :func:`g_study_cells` (the variance components of loss means and the reliability they predict,
    beside the measured split-half); the components are stored in ``report``."""
    per_seed = args.states == "per-seed"
    print("\n| rule " + G_STUDY_HEADER)
    print("|---|---|---|---|---|")
    for rule, sc in final.items():
        if sc.returns.shape[1] < 2 or sc.returns.shape[2] < 2:
            continue
        cells, report[rule]["g_study"] = g_study_cells(sc.returns, rng, per_seed=per_seed)
        print(f"| {rule} {cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="hopper")
    parser.add_argument("--dataset", default="noisy")
    parser.add_argument("--protocol", default="final",
                        help="the reporting protocol: a TrainConfig preset with optional :field=value overrides")
    parser.add_argument("--seeds", type=int, default=None, help="training seeds (default: the protocol's)")
    parser.add_argument("--episodes", type=int, default=None, help="start states per policy (default: the protocol's)")
    parser.add_argument("--actions", default="greedy,mean", help="action rules to compare (greedy, mean, sample)")
    parser.add_argument("--fidelities", default="search,final:seeds=2:episodes=8",
                        help="cheaper protocols to rank against the final one: comma-separated presets, each with "
                             "optional :field=value overrides")
    parser.add_argument("--random-maps", type=int, default=10, help="random valid mirror maps added to the zoo")
    parser.add_argument("--seed0", type=int, default=7000, help="first training seed (fresh: not used elsewhere)")
    parser.add_argument("--eval-seed", type=int, default=70000, help="first start-state seed (fresh)")
    parser.add_argument("--maps-seed", type=int, default=None,
                        help="seed of the random maps (default: --seed0); give another run's --seed0 to train its "
                             "losses on fresh seeds, e.g. a fidelity measured apart and compared by protocol_compare")
    parser.add_argument("--soups", default="",
                        help="seed-soup sizes G to score too (comma-separated; each divides --seeds and leaves >= 4 "
                             "soups for the split-half): each loss's weights averaged over G seeds")
    parser.add_argument("--scored-only", action="store_true",
                        help="score only the weights the protocol reports (not the last ones beside ema=d; with "
                             "--soups or the protocol's soup, only the soups): for TLA, where scoring costs as much "
                             "as training")
    parser.add_argument("--losses", type=int, default=None,
                        help="train only the first N losses of the zoo and maps: a cost probe on a quiet machine "
                             "(a split-half needs the whole set)")
    parser.add_argument("--states", choices=("shared", "per-seed"), default=None,
                        help="the protocol's start_states (default: its own): shared, every policy plays the same E "
                             "start states; per-seed, seed s of every loss plays its own E, reset(seed=eval_seed + s E "
                             "+ e) (S x E distinct states in all, still paired across losses)")
    parser.add_argument("--json", default=None, help="write every per-episode return here")
    parser.add_argument("--quick", action="store_true", help="a tiny run that checks the script end to end")
    args = parser.parse_args()
    check_json_path(args.json)
    if args.quick:
        args.seeds, args.episodes, args.random_maps = args.seeds or 2, 2, 1
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    _, protocol = parse_protocol(args.protocol, args.env)
    if args.states is not None:
        protocol = replace(protocol, start_states=args.states.replace("-", "_"))
    args.states = protocol.start_states.replace("_", "-")
    args.seeds = args.seeds or protocol.seeds
    args.episodes = args.episodes or protocol.episodes
    if args.quick:
        protocol = replace(protocol, steps=5, batch_size=8, checkpoints=min(protocol.checkpoints, 2))
    # a quick run's tiny dataset and reference go to a folder of their own, removed at exit, not the user's cache
    cache = tempfile.mkdtemp(prefix="symloss-quick-") if args.quick else None
    if cache is not None:
        atexit.register(shutil.rmtree, cache, True)
    ds = bench.build_dataset(args.env, args.dataset, cache_dir=cache, **({"n_pairs": 64} if args.quick else {}))
    spec = bench.spec_for_dataset(ds)
    reference = bench.load_reference(ds, spec, cache_dir=cache, **({"steps": 5} if args.quick else {}))
    data = PopulationTrainer(protocol).prepare(ds, spec, reference)
    u_range = data_u_ranges(data.train, "sequence")["mirror"]
    maps_seed = args.seed0 if args.maps_seed is None else args.maps_seed
    losses = zoo_losses(args.quick) + random_valid_maps(args.random_maps, u_range, seed=maps_seed,
                                                        u_data=data_u_samples(data.train, "sequence")["mirror"])
    if args.losses is not None:
        if not 3 <= args.losses <= len(losses):
            sys.exit(f"--losses {args.losses}: give 3 to {len(losses)} (a rank correlation needs at least 3 losses)")
        losses = losses[:args.losses]
    names = [name for name, _ in losses]
    actions = args.actions.split(",")
    print(f"{args.env}/{args.dataset}: {len(losses)} losses, protocol {args.protocol!r} "
          f"({protocol.steps} steps x {protocol.batch_size} pairs, lr {protocol.lr:g}), {args.seeds} seeds x "
          f"{args.episodes} start states ({args.states})"
          f"{'' if protocol.horizon is None else f', the first {protocol.horizon} steps of each'}; data u-range [{u_range[0]:.4g}, {u_range[1]:.3g}]")
    seeds = list(range(args.seed0, args.seed0 + args.seeds))
    soup_sizes = tuple(int(g) for g in args.soups.split(",") if g)
    if protocol.soup > 1 and protocol.soup not in soup_sizes:  # the protocol's own soups are scored too
        soup_sizes += (protocol.soup,)
    for size in soup_sizes:
        if size < 2 or args.seeds % size or args.seeds // size < 2:
            sys.exit(f"--soups {size}: a soup size must be >= 2 and divide --seeds {args.seeds} into >= 2 soups; "
                     f"pick a divisor such as {args.seeds // 2}")
    if args.scored_only and protocol.ema is None and protocol.checkpoints == 1 and not soup_sizes:
        sys.exit("--scored-only: this protocol scores only its last weights, which every run scores; drop the flag "
                 "or give the protocol ema=d, checkpoints=K or soup=G")
    final = train_and_score([loss for _, loss in losses], data, protocol, seeds, actions, args.episodes,
                            args.eval_seed, soups=soup_sizes, scored_only=args.scored_only)
    states = (bench.per_seed_starts(args.eval_seed, seeds, args.episodes).reshape(1, -1)  # every state played
              if args.states == "per-seed" else None)
    ref_scores = {a: float(np.mean(bench.episode_returns(spec, reference, args.env,
                                                         episodes=args.episodes if states is None else states.size,
                                                         seed=args.eval_seed, action=a, starts=states,
                                                         temperature=protocol.temperature,
                                                         horizon=protocol.horizon)))
                  for a in actions}
    report = {"names": names, "args": vars(args), "final": {}, "fidelities": {}}
    print("\n| action | split-half rho (mean, p10) | seeds for 10%: unpaired / paired / episode-free | seeds for 10%, "
          "moving losses: median (p25-p75), count | sd seed / state / residual | between-loss sd | reference | "
          "train s per loss | eval s per loss |")
    print("|---|---|---|---|---|---|---|---|---|")
    for action, sc in final.items():
        ref = ref_scores[base_rule(action)]  # averaged weights share the rule's reference
        comps = [components(sc.returns[i]) for i in range(len(losses))]
        sh = split_half(sc.returns, rng, per_seed=args.states == "per-seed")
        g = seeds_per_unit(action)  # a soup's rows are G seeds each: the counts below are in seeds
        need = seeds_needed(sc.returns, ref, per_row=g)
        moving = seeds_for_moving(sc.returns, ref, per_row=g)
        med = {k: math.sqrt(float(np.median([c[k] for c in comps]))) for k in ("seed", "state", "res")}
        print(f"| {action} | {sh[0]:.3f}, {sh[1]:.3f} | {need[0]:.1f} / {need[1]:.1f} / {need[2]:.1f} | "
              f"{moving[0]:.1f} ({moving[1]:.1f}-{moving[2]:.1f}), {moving[3]} | {med['seed']:.0f} / "
              f"{med['state']:.0f} / {med['res']:.0f} | {sc.returns.mean((1, 2)).std():.0f} | "
              f"{ref:.0f} | {sc.train_s / len(losses):.1f} | {sc.eval_s / len(losses):.1f} |")
        report["final"][action] = {"returns": sc.returns.tolist(), "split_half": sh, "seeds_needed": need,
                                   "seeds_moving": moving, "components": comps, "reference": ref,
                                   "train_s": sc.train_s, "eval_s": sc.eval_s, "seeds_per_unit": g,
                                   "seeds_moving_projected": {str(e): seeds_for_moving(sc.returns, ref, per_row=g,
                                                                                       episodes=e)
                                                              for e in projected_states(args.episodes)},
                                   "seeds_moving_per_seed_projected": {
                                       str(e): seeds_for_moving(sc.returns, ref, per_row=g, episodes=e,
                                                                per_seed_states=True)
                                       for e in projected_states(args.episodes)}}
    print_projection(report["final"], args.episodes)
    print_g_study(final, report["final"], args, rng)
    first = next(iter(final))  # the protocol's first scored rule: the cost and the loss table refer to it
    fid_seeds0 = args.seed0 + 1000
    for fid_name, fid in [parse_protocol(f, args.env) for f in args.fidelities.split(",") if f]:
        if args.quick:
            fid = replace(fid, steps=3, batch_size=8, checkpoints=1)
        fseeds = list(range(fid_seeds0, fid_seeds0 + fid.seeds))
        scored = train_and_score([loss for _, loss in losses], data, fid, fseeds, [fid.action], fid.episodes,
                                 args.eval_seed + 1000,  # with fid.ema: its last and its averaged weights
                                 soups=(fid.soup,) if fid.soup > 1 else ())
        cost = (fid.steps * fid.batch_size * fid.seeds) / (protocol.steps * protocol.batch_size * args.seeds)
        for fid_rule, fid_scores in scored.items():
            wall = (fid_scores.train_s + fid_scores.eval_s) / (final[first].train_s + final[first].eval_s)
            rhos = {a: float(stats.spearmanr(fid_scores.returns.mean((1, 2)), sc.returns.mean((1, 2))).statistic)
                    for a, sc in final.items()}
            print(f"\nfidelity {fid_name!r} ({fid.steps} steps x {fid.batch_size} pairs, {fid.seeds} seeds x "
                  f"{fid.episodes} episodes, action {fid_rule}): Spearman rho vs final " +
                  ", ".join(f"{a} {r:.3f}" for a, r in rhos.items()) +
                  f"; cost {cost:.3f} of the final in pair-steps, {wall:.3f} in wall time")
            key = fid_name if fid_rule == rule_name(fid) else f"{fid_name} [{fid_rule}]"
            report["fidelities"][key] = {"returns": fid_scores.returns.tolist(), "rho": rhos, "cost": cost,
                                         "wall_ratio": wall}
    for rule in [r for r in final if (r.endswith("+ema") or "@avg" in r or "@mix" in r or "~soup" in r)
                 and base_rule(r) in final]:
        base, avg = final[base_rule(rule)].returns, final[rule].returns
        gain = avg.mean((1, 2)) - base.mean((1, 2))
        rho = stats.spearmanr(avg.mean((1, 2)), base.mean((1, 2))).statistic
        print(f"\n{rule} against the last weights of the same training ({base_rule(rule)}): loss "
              f"means rank with "
              f"Spearman rho {rho:.3f}; mean change {gain.mean():+.1f} (losses: min {gain.min():+.1f}, max "
              f"{gain.max():+.1f})")
    order = np.argsort(-final[first].returns.mean((1, 2)))
    print(f"\nloss means (mean +- sd over seeds), ordered by {first!r}:")
    print("| loss | " + " | ".join(final) + " |")
    print("|---|" + "---|" * len(final))
    for i in order:
        cells = []
        for sc in final.values():
            r = sc.returns[i]
            cells.append(f"{r.mean():.0f} +- {r.mean(1).std(ddof=1) if r.shape[0] > 1 else 0:.0f}")
        print(f"| {names[i]} | " + " | ".join(cells) + " |")
    if args.json:
        write_json(args.json, report)


if __name__ == "__main__":
    main()
