"""The search's evaluator: scores losses at a rung of the fidelity ladder and runs a generation's promotions.

:class:`Ladder` binds each rung's protocol (``SearchConfig.rung_protocols()``) to a fitness. With the built-in
:class:`symloss.train.BenchmarkFitness` (or any fitness with ``at(protocol)``), rung r trains only the seeds that
no lower rung with the same scoring has (``_rungs.missing_seeds``); a fitness without ``at`` has one rung.
Every call is one batched job per group of losses that miss the same seeds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from symloss.expr import parse_formula, stabilise
from symloss.objectives import SLOT_SPECS, MirrorLoss
from symloss.search._config import SearchConfig
from symloss.search._evolve import SearchState, base_loss, short_reason
from symloss.search._fitness import FitnessFn, FitnessResult, safe_call
from symloss.search._rungs import (
    apply_rung,
    combine,
    missing_seeds,
    next_promotion,
    protocol_for,
    rung_entry,
    scoring_fingerprint,
)
from symloss.train import TrainConfig

logger = logging.getLogger(__name__)

Report = Callable[[str], None]


class Ladder:
    """Rung protocols and their fitness functions, lowest first."""

    def __init__(self, config: SearchConfig, fitness: FitnessFn) -> None:
        self.config = config
        self.fitness = fitness
        self.at = getattr(fitness, "at", None) if callable(getattr(fitness, "at", None)) else None
        protocols = config.rung_protocols()
        if self.at is None and len(protocols) > 1:
            logger.info("the fitness has no at(protocol): one fidelity, no promotion")
        self.protocols: list[TrainConfig] = protocols if self.at is not None else protocols[:1]
        self._fns: dict[TrainConfig, FitnessFn] = {self.protocols[0]: fitness}

    @property
    def rungs(self) -> int:
        return len(self.protocols)

    def fitness_at(self, protocol: TrainConfig) -> FitnessFn:
        """The fitness scoring ``protocol`` (made once per protocol)."""
        if protocol not in self._fns:
            if self.at is None:
                raise ValueError("this fitness has no at(protocol): it scores one protocol only")
            self._fns[protocol] = self.at(protocol)
        return self._fns[protocol]

    def evaluate(self, losses: Mapping[str, MirrorLoss], rung: int,
                 records: Mapping[str, Mapping[str, Any]]) -> dict[str, FitnessResult]:
        """Rung ``rung``'s result for each key: its missing seeds trained (one job per group), the rest reused."""
        groups: dict[tuple[int, ...], list[str]] = {}
        for key in losses:
            seeds = missing_seeds(records.get(key, {}), self.protocols, rung)
            groups.setdefault(seeds, []).append(key)
        out: dict[str, FitnessResult] = {}
        for seeds, keys in groups.items():
            if not seeds:  # everything known already
                results = [FitnessResult(0.0) for _ in keys]
            else:
                protocol = protocol_for(self.protocols, rung, seeds)
                results = safe_call(self.fitness_at(protocol), [losses[k] for k in keys])
            for key, result in zip(keys, results, strict=True):
                out[key] = combine(records.get(key, {}), self.protocols, rung, result)
        return out


def loss_of(record: Mapping[str, Any], config: SearchConfig, key: str) -> MirrorLoss:
    """The MirrorLoss of a cache record: a baseline's stored loss, or the base loss with the record's slots."""
    if "loss" in record:
        return MirrorLoss.from_dict(record["loss"])
    slots = {slot: stabilise(parse_formula(text, SLOT_SPECS[slot])) for slot, text in record["formulas"].items()}
    return base_loss(config).replace(**slots, name=loss_name(key))


def loss_name(key: str) -> str:
    """``symloss_<8 hex digits>``: a discovered loss's name, from its cache key (one name per key)."""
    import hashlib

    return "symloss_" + hashlib.sha1(key.encode()).hexdigest()[:8]


def promote(state: SearchState, ladder: Ladder, config: SearchConfig, *,
            save: Callable[[SearchState], None] | None = None, report: Report | None = None) -> SearchState:
    """Run the promotions of ``state.generation`` that are not done yet (all of them, or the rest after a
    kill), checkpointing after each rung's batch with ``save``."""
    cache = dict(state.cache)
    while (plan := next_promotion(cache, state.generation, ladder.rungs, config.promote_fraction)) is not None:
        rung, keys = plan
        if report:
            report(f"gen {state.generation}: rung {rung}, {len(keys)} losses")
        losses = {k: loss_of(cache[k], config, k) for k in keys}
        results = ladder.evaluate(losses, rung, cache)
        for key, result in results.items():
            entry = rung_entry(result)
            entry["reason"] = short_reason(entry["reason"])
            cache[key] = apply_rung(dict(cache[key]), rung, entry)
            cache[key]["select"] = selection_mean(cache[key], ladder.protocols)
        state = replace(state, cache=cache)
        if save:
            save(state)
    return refresh_population(state)


def selection_mean(record: Mapping[str, Any], protocols: list[TrainConfig]) -> float:
    """The mean selection compares: that of the highest rung scored like rung 0 (same fingerprint: more seeds,
    same scale), so a candidate promoted to a rung with another scoring rule is not compared on another scale."""
    base = scoring_fingerprint(protocols[0])
    same = [int(r) for r, e in record.get("rungs", {}).items()
            if int(r) < len(protocols) and scoring_fingerprint(protocols[int(r)]) == base and not e.get("reason")]
    return float(record["rungs"][str(max(same))]["mean"]) if same else float(record["mean"])


def refresh_population(state: SearchState) -> SearchState:
    """Selection sees each individual's :func:`selection_mean` (the population's fitness follows the cache)."""
    for ind in state.population:
        record = state.cache.get(ind.key) if ind.key else None
        if record is not None and not record.get("reason"):
            ind.fitness.values = (float(record.get("select", record["mean"])), ind.fitness.values[1])
    return state


def baseline_records(results: Mapping[str, FitnessResult], losses: Mapping[str, MirrorLoss],
                     labels: Mapping[str, str], generation: int) -> dict[str, dict[str, Any]]:
    """Cache records of baselines scored at rung 0 (their slots as text, their loss as a dict)."""
    from symloss.expr import complexity, to_formula, to_latex

    out = {}
    for key, result in results.items():
        loss = losses[key]
        exprs = {slot: getattr(loss, slot) for slot in ("mirror", "link", "imitation")
                 if getattr(loss, slot) is not None}
        entry = rung_entry(result)
        entry["reason"] = short_reason(entry["reason"])
        out[key] = {"mean": entry["mean"], "std": entry["std"], "reason": entry["reason"],
                    "complexity": sum(complexity(e) for e in exprs.values()), "generation": generation,
                    "kind": "baseline", "name": labels[key], "rung": 0, "rungs": {"0": entry},
                    "loss": loss.to_dict(), "formulas": {s: to_formula(e) for s, e in exprs.items()},
                    "latex": {s: to_latex(e) for s, e in exprs.items()}}
    return out


def top_records(cache: Mapping[str, Mapping[str, Any]], kind: str, k: int) -> list[str]:
    """Keys of the ``k`` best valid records of ``kind``: highest rung first, then mean, then simplest."""
    rows = [(r.get("rung", 0), r["mean"], -r.get("complexity", 0), key) for key, r in cache.items()
            if r.get("kind", "discovered") == kind and not r.get("reason")]
    return [key for *_, key in sorted(rows, reverse=True)[:k]]


__all__ = ["Ladder", "baseline_records", "selection_mean", "loss_name", "loss_of", "promote", "refresh_population", "top_records"]

