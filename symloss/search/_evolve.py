"""Genetic programming over MPO slots: operators, candidates, and the ask/tell steps of a generation.

A generation:

1. ``ask(state, ops)``: build offspring (the initial population: the zoo's maps and random trees;
   later: selection, crossover and mutation under static height/size limits), turn each into SymPy,
   check validity, and key it canonically. Invalid candidates carry a reason and never train.
2. the caller evaluates the *new* valid keys in one batched job (cached keys are not retrained);
3. ``tell(state, candidates, results)``: assign fitness, update the cache, select the next population.

All randomness comes from the search's own ``random.Random``, whose state is saved in :class:`SearchState`
(so a resumed run continues the same sequence). DEAP's operators draw from the module-level functions of
``random``; :func:`drawing_from` points those at the search's generator for the duration of ``ask``, so
the global generator is never read or advanced: a user's ``random.getstate()`` is the same before and after.

Validity checks of ``mirror`` and ``imitation`` run on the u range the training data has (``u_ranges``,
fixed when a run starts and stored in its checkpoint), not only on the checks' default range.
"""

from __future__ import annotations

import functools
import math
import operator
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import sympy as sp
from deap import gp, tools

from symloss.expr import (
    CHECKS,
    CheckResult,
    canonical_key,
    complexity,
    make_pset,
    parse_formula,
    slot_variables,
    stabilise,
    sympy_to_tree,
    to_formula,
    to_latex,
)
from symloss.objectives import MirrorLoss, get_loss
from symloss.search._config import SearchConfig
from symloss.search._fitness import WORST, FitnessResult
from symloss.search._individual import Individual
from symloss.search._rng import drawing_from
from symloss.search._rungs import rung_entry

ZOO_SEEDS: dict[str, tuple[str, ...]] = {
    "mirror": ("u", "u - log(1 - exp(u))", "softplus(u)", "u + tanh(u)"),
    "link": ("softplus(-z)", "0.9*softplus(-z) + 0.1*softplus(z)", "square(z - 0.5)"),
    "imitation": ("-u_w",),
}
"""Known forms put into the initial population: DPO's and ORPO's maps, DPO/cDPO/IPO-style links, SFT."""


@dataclass
class Candidate:
    """An individual made concrete: its SymPy slots, loss, canonical key, complexity and validity."""

    individual: Individual
    exprs: dict[str, sp.Expr]
    key: str
    complexity: int
    loss: MirrorLoss | None
    reason: str = ""


@dataclass(frozen=True)
class Operators:
    """Everything variation needs, built once from the config (one visible place for operators)."""

    config: SearchConfig
    psets: Mapping[str, gp.PrimitiveSet]
    base: MirrorLoss
    generate: Callable[[gp.PrimitiveSet], list]
    mate: Callable[[gp.PrimitiveTree, gp.PrimitiveTree], tuple]
    mutations: Mapping[str, tuple[Callable[[gp.PrimitiveTree], tuple], ...]]
    """Slot -> mutation operators taking only the tree (the slot's primitive set is bound), so DEAP's
    staticLimit, which may hand back any deep-copied positional argument, can only return a tree."""
    checks: Mapping[str, Callable[[sp.Expr], CheckResult]]
    """Slot -> validity check with its options bound (progress t, the data's u range)."""
    novel: Callable[[Candidate], bool] = lambda candidate: True
    """Whether a valid candidate is a new loss, not one equivalent to a known or already accepted one (the
    search's semantic filter, ``LossSearch._novelty``; it remembers what it accepted). Default: every one."""
    screen: Callable[[Mapping[str, sp.Expr]], str] = lambda exprs: ""
    """A candidate's slots -> why it would not train ("" if it would): a mirror map numerically flat in float32
    where the data lies (``_dedup.flat_reason``), when that range is known."""


@dataclass(frozen=True)
class SearchState:
    """Explicit state of a search after ``generation`` completed generations (-1: nothing yet)."""

    generation: int
    population: tuple[Individual, ...]
    rng_state: Any
    """``random.Random.getstate()`` of the search's own generator."""
    cache: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    history: tuple[dict[str, Any], ...] = ()
    u_ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    """Slot -> (low, high): the u range of the training data on which ``mirror`` / ``imitation`` must be
    valid (see ``build_operators``); empty: the checks' default range only."""
    data_ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    """Slot -> where the data's u lies (not widened): the range on which equivalent forms are recognised."""
    es: Mapping[str, Any] | None = None
    """``method="es"``: the ES state as JSON (``_es.state_to_json``); None for GP."""


def initial_state(seed: int, u_ranges: Mapping[str, tuple[float, float]] | None = None) -> SearchState:
    """The state before generation 0: no population, the generator seeded with ``seed``."""
    return SearchState(-1, (), random.Random(seed).getstate(), u_ranges=dict(u_ranges or {}))


def _limit(fn: Callable, config: SearchConfig) -> Callable:
    height = gp.staticLimit(key=operator.attrgetter("height"), max_value=config.max_height)
    size = gp.staticLimit(key=len, max_value=config.max_size)
    return size(height(fn))


def mutate_constants(tree: gp.PrimitiveTree, pset: gp.PrimitiveSet, sigma: float) -> tuple[gp.PrimitiveTree]:
    """Constant tuning: perturb every constant c by N(0, (sigma |c| + 0.01)^2), rounded to 3 decimals
    (drawn through the module-level ``random``, as DEAP's operators are: call within ``drawing_from``)."""
    for i, node in enumerate(tree):
        if isinstance(node, gp.Terminal) and not isinstance(node.value, str) and hasattr(type(node), "func"):
            new = type(node).__new__(type(node))
            new.value = round(node.value + random.gauss(0.0, sigma * abs(node.value) + 0.01), 3)
            tree[i] = new
    return (tree,)


def base_loss(config: SearchConfig) -> MirrorLoss:
    """The zoo loss whose non-evolved slots, beta and aggregation every candidate shares."""
    base = get_loss(config.base)
    return base if config.beta is None else base.replace(beta=config.beta)


U_RANGE_SLOTS = ("mirror", "imitation")
"""Slots whose argument is a log-probability u: their checks take the data's ``u_range``."""


def build_operators(config: SearchConfig, *, u_ranges: Mapping[str, tuple[float, float]] | None = None,
                    data_ranges: Mapping[str, tuple[float, float]] | None = None) -> Operators:
    """Primitive sets per slot, the variation operators and the validity checks, all limits and
    probabilities in one place. ``u_ranges``: slot -> the data's u range widened (``SearchState.u_ranges``):
    the validity checks; ``data_ranges``: where the data lies (``SearchState.data_ranges``): the flatness screen."""
    u_ranges = dict(u_ranges or {})
    psets = {slot: make_pset(slot, uses_t=config.temporal, primitives=config.primitives,
                             constant_range=config.constant_range) for slot in config.slots}
    base = base_loss(config)
    low, high = config.init_depth

    def generate(pset: gp.PrimitiveSet) -> list:
        return gp.genHalfAndHalf(pset, min_=low, max_=high)

    def slot_mutations(pset: gp.PrimitiveSet) -> tuple[Callable[[gp.PrimitiveTree], tuple], ...]:
        grow = functools.partial(gp.genGrow, min_=0, max_=2)
        operators = (
            functools.partial(gp.mutUniform, expr=grow, pset=pset),       # replace a subtree
            functools.partial(gp.mutNodeReplacement, pset=pset),          # swap one node
            gp.mutShrink,                                                 # replace a subtree by a leaf
            functools.partial(mutate_constants, pset=pset, sigma=config.constant_sigma),  # tune constants
            functools.partial(gp.mutInsert, pset=pset),                   # wrap a subtree
        )
        return tuple(_limit(op, config) for op in operators)

    mutations = {slot: slot_mutations(pset) for slot, pset in psets.items()}
    checks = {slot: functools.partial(CHECKS[slot], uses_t=config.temporal,
                                      **({"u_range": u_ranges.get(slot)} if slot in U_RANGE_SLOTS else {}))
              for slot in config.slots}
    return Operators(config, psets, base, generate, _limit(gp.cxOnePoint, config), mutations, checks,
                     screen=_flatness_screen(config, base, dict(data_ranges or {})))


def _flatness_screen(config: SearchConfig, base: MirrorLoss,
                     data_ranges: Mapping[str, tuple[float, float]]) -> Callable[[Mapping[str, sp.Expr]], str]:
    if "mirror" not in config.slots or "mirror" not in data_ranges:
        return lambda exprs: ""
    from symloss.search._dedup import flat_reason

    def screen(exprs: Mapping[str, sp.Expr]) -> str:
        if "mirror" not in exprs:  # one slot checked on its own (initial draws)
            return ""
        reason = flat_reason(exprs["mirror"], data_ranges["mirror"], beta=base.beta, temporal=config.temporal)
        return f"mirror: {reason}" if reason else ""
    return screen


def make_candidate(individual: Individual, ops: Operators) -> Candidate:
    """Convert, check and key an individual; invalid ones get a reason and no loss."""
    try:
        exprs = individual.exprs()
        if "mirror" in exprs:  # m + c defines the same loss (constants cancel in the margin): key without c
            constant, _ = exprs["mirror"].as_coeff_Add()
            exprs["mirror"] = exprs["mirror"] - constant
        key = "|".join(f"{slot}:{canonical_key(exprs[slot])}" for slot in sorted(exprs))
        size = sum(complexity(e) for e in exprs.values())
    except (RecursionError, ValueError, TypeError) as exc:
        return Candidate(individual, {}, f"invalid:{id(individual)}", individual.size, None, f"conversion: {exc}")
    for slot, expr in exprs.items():
        result = ops.checks[slot](expr)
        if not result:
            return Candidate(individual, exprs, key, size, None, f"{slot}: {result.reason}")
    reason = ops.screen(exprs)
    if reason:
        return Candidate(individual, exprs, key, size, None, reason)
    try:
        loss = ops.base.replace(**exprs, name="candidate")
    except ValueError as exc:
        return Candidate(individual, exprs, key, size, None, f"loss: {exc}")
    return Candidate(individual, exprs, key, size, loss)


def _seed_individuals(ops: Operators) -> list[Individual]:
    """Individuals made of the zoo's forms, slot by slot (other slots take the base loss's form)."""
    seeds = []
    for slot in ops.config.slots:
        for text in ZOO_SEEDS[slot]:
            trees = {}
            for s in ops.config.slots:
                expr = stabilise(parse_formula(text, slot_variables(s))) if s == slot else getattr(ops.base, s)
                if expr is None:
                    expr = parse_formula(ZOO_SEEDS[s][0], slot_variables(s))
                try:
                    trees[s] = gp.PrimitiveTree(sympy_to_tree(expr, ops.psets[s]))
                except ValueError:
                    break
            else:
                seeds.append(Individual(trees))
    return seeds


INIT_ATTEMPTS = 30
"""Random trees drawn per initial individual until one passes the validity checks."""


def initial_individuals(ops: Operators) -> list[Individual]:
    """The individuals of :func:`initial_candidates`."""
    return [cand.individual for cand in initial_candidates(ops)]


def _random_individual(ops: Operators) -> tuple[Individual, bool]:
    """Random trees, each slot's redrawn (up to INIT_ATTEMPTS times) until it passes that slot's check, and
    whether every slot found one. (Redrawing all slots together needs every slot valid in the same draw: for
    a TA mirror and link, about 2% of draws, so 30 draws often gave no valid individual.)"""
    trees, each_valid = {}, True
    for slot, pset in ops.psets.items():
        for _ in range(INIT_ATTEMPTS):
            trees[slot] = gp.PrimitiveTree(ops.generate(pset))
            if make_candidate(Individual({slot: trees[slot]}), ops).loss is not None:
                break
        else:
            each_valid = False
    return Individual(trees), each_valid


def initial_candidates(ops: Operators) -> list[Candidate]:
    """The zoo's forms (if ``seed_zoo``) followed by random trees, ``population`` in all.

    Random trees are redrawn (up to INIT_ATTEMPTS times) until they pass the validity checks and differ
    canonically from those already drawn, so the initial population is neither mostly rejected (most
    random trees are not increasing maps) nor full of duplicates (many reduce to ``u``)."""
    config = ops.config
    seeds = _seed_individuals(ops)[: config.population] if config.seed_zoo else []
    candidates = [make_candidate(ind, ops) for ind in seeds]
    for cand in candidates:  # the zoo's forms are kept even when equivalent on the data; remembered as known
        if cand.loss is not None:
            ops.novel(cand)
    keys = {cand.key for cand in candidates}
    while len(candidates) < config.population:
        for _ in range(INIT_ATTEMPTS):
            ind, each_valid = _random_individual(ops)
            candidate = make_candidate(ind, ops)
            if not each_valid or candidate.loss is not None and candidate.key not in keys and ops.novel(candidate):
                break
        keys.add(candidate.key)
        candidates.append(candidate)
    return candidates


def _selection_score(ind: Individual, parsimony: float) -> float:
    score, size = ind.fitness.values
    return score - parsimony * size if score > WORST else WORST


def select(population: Sequence[Individual], k: int, config: SearchConfig,
           rng: random.Random) -> list[Individual]:
    """Parents: tournament on fitness - parsimony * complexity, or NSGA-II's crowded tournament on
    (fitness, complexity) when the population size is a multiple of 4 (DEAP's requirement; call it
    within ``drawing_from(rng)``)."""
    if config.selection == "nsga2" and len(population) % 4 == 0 and k <= len(population):
        ranked = tools.selNSGA2(list(population), len(population))  # assigns crowding distances
        return tools.selTournamentDCD(ranked, k)
    chosen = []
    for _ in range(k):
        contestants = [rng.choice(population) for _ in range(config.tournament_size)]
        chosen.append(max(contestants, key=lambda ind: _selection_score(ind, config.parsimony)))
    return chosen


def vary(parents: Sequence[Individual], ops: Operators, rng: random.Random) -> list[Individual]:
    """Crossover (per slot, with ``crossover_prob``) and mutation (``mutation_prob``) of copies (DEAP's
    operators: call within ``drawing_from(rng)``)."""
    config = ops.config
    offspring = [p.copy() for p in parents]
    for i in range(1, len(offspring), 2):
        if rng.random() < config.crossover_prob:
            for slot in config.slots:
                a, b = ops.mate(offspring[i - 1].trees[slot], offspring[i].trees[slot])
                offspring[i - 1].trees[slot], offspring[i].trees[slot] = a, b
    for child in offspring:
        if rng.random() < config.mutation_prob:
            slot = rng.choice(config.slots)
            (child.trees[slot],) = rng.choice(ops.mutations[slot])(child.trees[slot])
    return offspring


NOVELTY_ATTEMPTS = 6
"""Extra mutations tried on a child that is invalid or already known (also semantically: ``Operators.novel``),
to spend training on new losses."""


def _novel(candidates: list[Candidate], known: Mapping[str, Any], ops: Operators,
           rng: random.Random) -> list[Candidate]:
    """Re-mutate children that are invalid or duplicates (of the cache or of each other), a few times; a child
    still invalid or known after that is replaced by a random immigrant (a new valid tree, as in the initial
    population), so a generation trains new losses instead of none (measured: with population 8 on Hopper
    noisy, 5 of 6 children of a generation were invalid after the re-mutations)."""
    seen: set[str] = set()
    out = []

    def fresh(cand: Candidate) -> bool:
        return cand.loss is not None and cand.key not in known and cand.key not in seen and ops.novel(cand)

    for cand in candidates:
        for _ in range(NOVELTY_ATTEMPTS):
            if fresh(cand):
                break
            child = cand.individual.copy()
            slot = rng.choice(ops.config.slots)
            (child.trees[slot],) = rng.choice(ops.mutations[slot])(child.trees[slot])
            cand = make_candidate(child, ops)
        else:
            if not fresh(cand):
                for _ in range(INIT_ATTEMPTS):
                    immigrant = make_candidate(_random_individual(ops)[0], ops)
                    if fresh(immigrant):
                        cand = immigrant
                        break
        seen.add(cand.key)
        out.append(cand)
    return out


def ask(state: SearchState, ops: Operators) -> tuple[list[Candidate], SearchState]:
    """Offspring of the next generation as candidates (checked and keyed), and the advanced RNG state."""
    rng = random.Random()
    rng.setstate(state.rng_state)
    with drawing_from(rng):
        if not state.population:
            candidates = initial_candidates(ops)
        else:
            n_children = ops.config.population - (0 if ops.config.selection == "nsga2" else ops.config.elite)
            individuals = vary(select(state.population, n_children, ops.config, rng), ops, rng)
            candidates = _novel([make_candidate(ind, ops) for ind in individuals], state.cache, ops, rng)
    return candidates, replace(state, rng_state=rng.getstate())


MAX_REASON = 500
"""Longest failure reason stored in the cache (a fitness may raise with a very long message)."""


def short_reason(reason: str) -> str:
    """``reason`` cut to MAX_REASON characters."""
    return reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 3] + "..."


def make_record(candidate: Candidate, result: FitnessResult, generation: int) -> dict[str, Any]:
    reason = short_reason(result.reason or candidate.reason)
    return {"mean": result.mean, "std": result.std, "reason": reason,
            "complexity": candidate.complexity, "generation": generation, "kind": "discovered", "rung": 0,
            "rungs": {"0": {**rung_entry(result), "reason": reason}},
            "formulas": {slot: to_formula(e) for slot, e in candidate.exprs.items()},
            "latex": {slot: to_latex(e) for slot, e in candidate.exprs.items()}}


def tell(state: SearchState, candidates: Sequence[Candidate], results: Mapping[str, FitnessResult],
         ops: Operators, aliases: Mapping[str, str] | None = None) -> tuple[SearchState, dict[str, Any]]:
    """Assign fitness (failed candidates get WORST and their reason), update the cache, select survivors.

    ``aliases``: candidate key -> the key of an equivalent cached loss (semantic deduplication); such a
    candidate takes that entry's fitness and is listed in its ``aliases`` instead of getting its own entry."""
    generation = state.generation + 1
    cache = dict(state.cache)
    aliases = dict(aliases or {})
    n_new = n_cached = n_invalid = 0
    for cand in candidates:
        key = aliases.get(cand.key, cand.key)
        if key != cand.key and key in cache and cand.loss is not None:
            cache[key] = _with_alias(cache[key], cand)
        if cand.loss is None:
            result = FitnessResult(WORST, 0.0, cand.reason)
            n_invalid += 1
        elif key in cache:
            stored = cache[key]
            result = FitnessResult(stored.get("select", stored["mean"]), stored["std"], stored["reason"])
            n_cached += 1
        else:
            result = results.get(key, FitnessResult(WORST, 0.0, "not evaluated"))
            n_new += 1
        if cand.loss is not None and key not in cache:
            cache[key] = make_record(cand, result, generation)
        mean = result.mean if math.isfinite(result.mean) and not result.reason else WORST
        cand.individual.fitness.values = (mean, float(cand.complexity))
        cand.individual.key = key if cand.loss is not None else ""
    population = _survivors(state.population, [c.individual for c in candidates], ops.config)
    scores = [ind.fitness.values[0] for ind in population if ind.fitness.values[0] > WORST]
    metrics = {"generation": generation, "best": max(scores, default=WORST),
               "mean": sum(scores) / len(scores) if scores else WORST, "new": n_new, "cached": n_cached,
               "invalid": n_invalid, "candidates": len(candidates)}
    new_state = replace(state, generation=generation, population=tuple(population), cache=cache,
                        history=(*state.history, metrics))
    return new_state, metrics


MAX_ALIASES = 20
"""Equivalent forms remembered per cache entry (the simplest is shown)."""


def _with_alias(record: Mapping[str, Any], cand: Candidate) -> dict[str, Any]:
    """``record`` listing ``cand`` as an equivalent form (at most MAX_ALIASES, simplest kept)."""
    known = [a for a in record.get("aliases", []) if a["key"] != cand.key]
    if len(known) >= MAX_ALIASES or cand.key in {a["key"] for a in record.get("aliases", [])}:
        return dict(record)
    alias = {"key": cand.key, "complexity": cand.complexity,
             "formulas": {slot: to_formula(e) for slot, e in cand.exprs.items()},
             "latex": {slot: to_latex(e) for slot, e in cand.exprs.items()}}
    return {**record, "aliases": sorted([*known, alias], key=lambda a: (a["complexity"], a["key"]))}


def _survivors(parents: Sequence[Individual], offspring: Sequence[Individual],
               config: SearchConfig) -> list[Individual]:
    if not parents:
        return list(offspring)
    if config.selection == "nsga2":
        return tools.selNSGA2([*parents, *offspring], config.population)
    elites = sorted(parents, key=lambda ind: ind.fitness.values[0], reverse=True)[: config.elite]
    return [*elites, *offspring]

