"""``--method es``: the paper's OpenAI-ES over the monotone parametric mirror map, as steps the search drives.

One generation is a pure step::

    state = es_initial_state(config, u_range)            # theta ~ DPO's map, generator seeded by config.seed
    state, metrics, evaluated = es_generation(state, config, evaluate)
    ...
    forms = distill_best(state, state.u_range, seed=config.seed)   # short closed forms of the best map

``evaluate(losses) -> [FitnessResult]`` is the search's (caching, rungs); the loss of a theta is the base
loss with m = m_theta (:func:`symloss.search._es.mirror_expr` on the data's u range). The state
(:class:`~symloss.search._es.ESState`) holds its generator, so a resumed run continues identically;
``state_to_json`` / ``state_from_json`` store it.

Distillation (:func:`distill_best`) pools two kinds of short forms of the best map m*, each scaled to
m*'s slope across the range (the scale is the loss's effective beta, so it is kept):

- sparse fits: a u + b phi_k(u) with a, b >= 0 by least squares on the range, for each basis term phi_k;
- the offline DEAP engine's hall of fame (:func:`symloss.search._distill.distill_mirror`),

and returns the best ``forms`` that are distinct on the range (their normalised maps differ by more than
DISTINCT), ranked by normalised error + PARSIMONY * complexity.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import sympy as sp

from symloss.expr import canonical_key, check_mirror, compile_expr, complexity, round_constants
from symloss.objectives import MirrorLoss
from symloss.search._baselines import baselines
from symloss.search._config import SearchConfig
from symloss.search._distill import Distilled, distill_mirror, map_error, range_grid, unit_map
from symloss.search._es import (
    ESState,
    ask,
    basis,
    check_u_range,
    init_state,
    mirror_expr,
    state_from_json,
    state_to_json,
    tell,
)
from symloss.search._evolve import Candidate, Operators, SearchState, base_loss, make_record
from symloss.search._fitness import WORST, FitnessResult, safe_call
from symloss.search._individual import Individual
from symloss.search._multifidelity import Ladder, baseline_records
from symloss.validation import ConfigError, check_range

Evaluate = Callable[[list[MirrorLoss]], "Sequence[FitnessResult]"]
DISTINCT = 1e-3
"""Forms whose normalised maps differ by at most this on the range count as one."""
PARSIMONY = 0.002
"""Ranking of distilled forms: normalised error + PARSIMONY * complexity."""
DIGITS = 4
"""Significant digits of the constants of a distilled form."""
DISTILL_POPULATION = 24
"""Population of the DEAP distillation; ``budget`` sets its generations (budget // population - 1)."""


def _check_es(config: SearchConfig) -> None:
    if tuple(config.slots) != ("mirror",) or config.temporal:
        raise ConfigError(f"method='es' with slots={tuple(config.slots)!r}, temporal={config.temporal!r}: the ES "
                          "searches the mirror map m(u) only; use slots=('mirror',), temporal=False, or method='gp'")


def es_initial_state(config: SearchConfig, u_range: Sequence[float] | None) -> ESState:
    """The ES state before generation 1: basis on ``u_range`` (the data's), generator seeded by config.seed."""
    _check_es(config)
    return init_state(u_range, seed=config.seed)


def es_loss(theta: np.ndarray, config: SearchConfig, u_range: Sequence[float] | None) -> MirrorLoss:
    """``base_loss(config)`` with m = m_theta on ``u_range``."""
    return base_loss(config).replace(mirror=mirror_expr(theta, u_range), name="es")


def es_generation(state: ESState, config: SearchConfig,
                  evaluate: Evaluate) -> tuple[ESState, dict[str, float], list[tuple[MirrorLoss, FitnessResult]]]:
    """One ES generation: ``config.population`` thetas (antithetic pairs; an odd population adds the centre),
    their losses scored by ONE ``evaluate`` call, and the Adam step. Returns (state, metrics, evaluated:
    each loss with its result). A crash or a wrong-length answer of ``evaluate`` fails the batch, not the run."""
    _check_es(config)
    eps, thetas, state = ask(state, config.population)
    losses = [es_loss(theta, config, state.u_range) for theta in thetas]
    results = safe_call(evaluate, losses)
    state, metrics = tell(state, eps, thetas, [r.mean if r.ok else -math.inf for r in results])
    return state, {**metrics, "new": len(losses)}, list(zip(losses, results, strict=True))


def sparse_fits(target: sp.Expr, u_range: Sequence[float]) -> list[sp.Expr]:
    """a u + b phi_k(u) (a, b >= 0; one term alone when the pair needs a negative weight) fitted to
    ``target`` by least squares on the range, for each basis term phi_k; and a u alone."""
    grid = range_grid(u_range)
    y = compile_expr(target, ["u"])(grid).numpy()
    phis = basis(u_range)
    columns = [np.broadcast_to(compile_expr(phi, ["u"])(grid).numpy(), y.shape) for phi in phis]
    out = []
    for k in range(len(phis)):
        chosen = (0,) if k == 0 else (0, k)
        while chosen:
            a = np.stack([columns[i] - columns[i].mean() for i in chosen], axis=1)
            coef = np.linalg.lstsq(a, y - y.mean(), rcond=None)[0]
            if (coef > 0).all():
                out.append(sp.Add(*(sp.Float(float(f"{c:.4g}")) * phis[i] for c, i in zip(coef, chosen, strict=True))))
                break
            chosen = tuple(i for i, c in zip(chosen, coef, strict=True) if c > 0)
    return out


def _rescaled(expr: sp.Expr, target: sp.Expr, grid) -> sp.Expr:
    """``expr`` times the ratio of the target's rise across the range to its own (slope kept: beta stays),
    constants rounded to DIGITS significant digits."""
    rise = [float(compile_expr(e, ["u"])(grid[[0, -1]]).diff()[0]) for e in (target, expr)]
    return round_constants(sp.Float(rise[0] / rise[1]) * expr, DIGITS)


def distill_best(state: ESState, u_range: Sequence[float] | None = None, *, seed: int = 0, budget: int = 480,
                 forms: int = 3) -> list[Distilled]:
    """Up to ``forms`` short closed forms of the best theta's map (module doc), best first, each with its max
    normalised error on ``u_range`` (default: the state's). ``budget``: candidates the DEAP engine scores
    (below 2 x DISTILL_POPULATION, e.g. 0, it is skipped and the sparse fits alone are ranked)."""
    u_range = check_u_range(state.u_range if u_range is None else u_range)
    check_range("budget", budget, lo=0, integer=True)
    check_range("forms", forms, lo=1, integer=True)
    target = mirror_expr(state.best_theta, state.u_range)
    grid = range_grid(u_range)
    goal = unit_map(target, grid)
    pool = [(e, "basis") for e in sparse_fits(target, u_range)]
    generations = budget // DISTILL_POPULATION - 1
    if generations >= 1:
        pool += [(d.expr, "deap") for d in distill_mirror(target, u_range=u_range, population=DISTILL_POPULATION,
                                                          generations=generations, seed=seed, forms=forms)]
    scored = []
    for expr, engine in pool:
        error = map_error(expr, goal, grid)
        if math.isfinite(error):
            scored.append((error + PARSIMONY * complexity(expr), complexity(expr), canonical_key(expr), expr, engine))
    chosen: list[Distilled] = []
    maps = []
    for _, _, _, expr, engine in sorted(scored, key=lambda row: row[:3]):
        values = unit_map(expr, grid)
        if all(float((values - m).abs().max()) > DISTINCT for m in maps):
            maps.append(values)
            final = _rescaled(expr, target, grid)
            if check_mirror(final, u_range=u_range):  # rounding its constants kept it a valid map
                chosen.append(Distilled(final, map_error(final, goal, grid), engine))
        if len(chosen) == forms:
            break
    return chosen


# -- one ES generation inside LossSearch ----------------------------------------------------------------------

def candidate_of(loss: MirrorLoss, ops: Operators) -> Candidate:
    """A loss with a given mirror map (ES, distillation) as a keyed, checked candidate (constant dropped)."""
    constant, _ = loss.mirror.as_coeff_Add()
    exprs = {"mirror": loss.mirror - constant}
    key = f"mirror:{canonical_key(exprs['mirror'])}"
    result = ops.checks["mirror"](exprs["mirror"])
    reason = ("" if result else f"mirror: {result.reason}") or ops.screen(exprs)
    return Candidate(Individual({}), exprs, key, complexity(exprs["mirror"]), None if reason else loss, reason)


def es_step(state: SearchState, config: SearchConfig, ops: Operators, ladder: Ladder, report) -> SearchState:
    """``state`` after one ES generation of a search: the thetas' losses scored at rung 0 (new keys only, one
    batched job; the baselines join generation 0) and cached like GP candidates; after the last generation the
    best map's distilled closed forms are trained as candidates too. The ES state rides in ``state.es``;
    promotion and checkpoints are the caller's."""
    u_range = state.data_ranges.get("mirror")
    es = state_from_json(state.es) if state.es else es_initial_state(config, u_range)
    generation = state.generation + 1
    extra = {b.key: b for b in baselines(config.baselines)} if generation == 0 else {}
    cache = dict(state.cache)

    def evaluate(losses: list[MirrorLoss], label: str) -> list[FitnessResult]:
        cands = [candidate_of(loss, ops) for loss in losses]
        jobs = {c.key: c.loss for c in cands if c.loss is not None and c.key not in cache}
        jobs.update({k: b.loss for k, b in extra.items() if k not in cache})
        report(f"gen {generation}: rung 0, {len(jobs)} {label}")
        results = ladder.evaluate(jobs, 0, {})
        for cand in cands:
            if cand.loss is not None and cand.key in results and cand.key not in cache:
                cache[cand.key] = make_record(cand, results[cand.key], generation)
        if extra:
            cache.update(baseline_records({k: results[k] for k in extra if k in results},
                                          {k: b.loss for k, b in extra.items()},
                                          {k: b.label for k, b in extra.items()}, generation))
            extra.clear()
        return [FitnessResult(cache[c.key].get("select", cache[c.key]["mean"]), cache[c.key]["std"], cache[c.key]["reason"])
                if c.loss is not None else FitnessResult(WORST, reason=c.reason) for c in cands]

    es, metrics, _ = es_generation(es, config, lambda losses: evaluate(losses, "ES maps"))
    if generation == config.generations:
        forms = distill_best(es, u_range, seed=config.seed)
        base = base_loss(config)
        evaluate([base.replace(mirror=d.expr, name="distilled") for d in forms], "distilled forms")
        metrics["distilled"] = len(forms)
    entry = {**{k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}, "generation": generation}
    return replace(state, generation=generation, cache=cache, es=state_to_json(es), history=(*state.history, entry))


__all__ = ["candidate_of", "distill_best", "es_generation", "es_initial_state", "es_loss", "es_step", "sparse_fits"]
