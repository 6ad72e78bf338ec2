"""Multi-fidelity evaluation: a ladder of protocols and successive halving per generation.

Rung 0 is the search fidelity (``SearchConfig.train``); rungs 1.. are ``SearchConfig.rungs``. In each generation
every new candidate is scored at rung 0; then, rung by rung, the best ``ceil(fraction * n)`` (at least one) of
the n candidates of that generation that are valid at rung r are promoted to rung r + 1. Baselines are promoted
the same way among themselves. Why successive halving per generation and not asynchronous promotion (ASHA): a
generation is one batched training job, so promotions are batched too (one job per rung per generation), and the
promotion decisions are a pure function of the cache, so a run killed in the middle of a promotion redoes exactly
the missing part on ``--resume`` (:func:`next_promotion` finds it).

A cache record keeps one entry per rung reached, ``record["rungs"][str(r)] = {"mean", "std", "seeds",
"per_seed"}``, and its top-level ``mean`` / ``std`` / ``rung`` are those of the highest rung (what selection and
the hall of fame read). Seeds are reused: a rung whose protocol differs from a lower rung's only in the seeds
(``seeds=6`` above the 2-seed search fidelity) trains only the seeds the lower rung has not scored.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from symloss.search._fitness import WORST, FitnessResult
from symloss.train import TrainConfig

SEED_FIELDS = frozenset({"seeds", "first_seed"})
NO_SCORE_FIELDS = frozenset({"device", "threads", "cuda_graph", "max_members_per_chunk", "memory_budget_mb"})
"""Fields of a protocol that do not change a member's score (where and how fast it runs)."""


def scoring_fingerprint(protocol: TrainConfig) -> tuple:
    """What fixes a seed's score: every protocol field but the seed list and the execution knobs."""
    data = protocol.to_dict()
    return tuple(sorted((k, str(v)) for k, v in data.items() if k not in SEED_FIELDS | NO_SCORE_FIELDS))


def rung_entry(result: FitnessResult) -> dict[str, Any]:
    """A cache record's entry for one rung (failures keep the reason and the worst mean)."""
    if not result.ok:
        return {"mean": WORST, "std": 0.0, "seeds": list(result.seeds), "per_seed": [], "reason": result.reason
                or "not finite"}
    return {"mean": result.mean, "std": result.std, "seeds": list(result.seeds),
            "per_seed": [float(v) for v in result.per_seed], "reason": ""}


def top_rung(record: Mapping[str, Any]) -> int:
    """The highest rung a record reached (0 for a record of a version without rungs)."""
    return max((int(r) for r in record.get("rungs", {})), default=0)


def apply_rung(record: dict[str, Any], rung: int, entry: Mapping[str, Any]) -> dict[str, Any]:
    """``record`` with ``entry`` at ``rung``; the top-level mean/std/rung/reason follow the highest rung."""
    rungs = {**record.get("rungs", {}), str(rung): dict(entry)}
    out = {**record, "rungs": rungs}
    top = rungs[str(max(int(r) for r in rungs))]
    out.update(mean=top["mean"], std=top["std"], rung=max(int(r) for r in rungs))
    if top.get("reason"):
        out["reason"] = top["reason"]
    return out


def reusable_scores(record: Mapping[str, Any], ladder: Sequence[TrainConfig], rung: int) -> dict[int, float]:
    """Seed -> score already known for ``ladder[rung]``'s scoring (from lower rungs with the same fingerprint)."""
    want = scoring_fingerprint(ladder[rung])
    known: dict[int, float] = {}
    for r, entry in record.get("rungs", {}).items():
        r = int(r)
        if r < len(ladder) and r != rung and scoring_fingerprint(ladder[r]) == want and not entry.get("reason"):
            known.update({int(s): float(v) for s, v in zip(entry["seeds"], entry["per_seed"], strict=False)})
    return known


def missing_seeds(record: Mapping[str, Any], ladder: Sequence[TrainConfig], rung: int) -> tuple[int, ...]:
    """The seeds of ``ladder[rung]`` that still need training for this record."""
    known = reusable_scores(record, ladder, rung)
    return tuple(s for s in ladder[rung].seed_list if s not in known)


def protocol_for(ladder: Sequence[TrainConfig], rung: int, seeds: Sequence[int]) -> TrainConfig:
    """``ladder[rung]`` restricted to ``seeds`` when they are a contiguous range; else the whole rung."""
    seeds = sorted(seeds)
    if seeds and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return dataclasses.replace(ladder[rung], first_seed=seeds[0], seeds=len(seeds), device_here=False)
    return ladder[rung]


def combine(record: Mapping[str, Any], ladder: Sequence[TrainConfig], rung: int,
            new: FitnessResult) -> FitnessResult:
    """Rung ``rung``'s result for a record: the new seeds' scores with the reusable ones, over the rung's seeds."""
    if not new.ok:
        return new
    scores = reusable_scores(record, ladder, rung)
    scores.update({int(s): float(v) for s, v in zip(new.seeds, new.per_seed, strict=True)})
    seeds = [s for s in ladder[rung].seed_list if s in scores]
    if len(seeds) < len(ladder[rung].seed_list):  # a fitness without per-seed scores: take its mean as is
        return new
    values = np.array([scores[s] for s in seeds])
    return FitnessResult(float(values.mean()), float(values.std()), "", tuple(seeds), tuple(values.tolist()))


def promotion_pool(cache: Mapping[str, Mapping[str, Any]], generation: int, rung: int, *,
                   kind: str) -> list[str]:
    """Keys of ``kind`` first evaluated in ``generation`` that are valid at ``rung``, best first."""
    pool = []
    for key, record in cache.items():
        entry = record.get("rungs", {}).get(str(rung))
        if record.get("kind", "discovered") != kind or record.get("generation") != generation or entry is None:
            continue
        if not entry.get("reason") and entry["mean"] > WORST and math.isfinite(entry["mean"]):
            pool.append((entry["mean"], -record.get("complexity", 0), key))
    return [key for *_, key in sorted(pool, reverse=True)]


def next_promotion(cache: Mapping[str, Mapping[str, Any]], generation: int, n_rungs: int, fraction: float,
                   ) -> tuple[int, list[str]] | None:
    """The next batch to promote in ``generation``: (target rung, keys not yet scored there), or None when done.

    For rung r = 0, 1, ...: the pool is the generation's valid keys at r (baselines and discovered losses
    separately); the best ``max(1, ceil(fraction * len(pool)))`` of each go to r + 1."""
    for rung in range(n_rungs - 1):
        todo = []
        for kind in ("discovered", "baseline"):
            pool = promotion_pool(cache, generation, rung, kind=kind)
            chosen = pool[: max(1, math.ceil(fraction * len(pool)))] if pool else []
            todo += [k for k in chosen if str(rung + 1) not in cache[k].get("rungs", {})]
        if todo:
            return rung + 1, todo
    return None


__all__ = ["apply_rung", "combine", "missing_seeds", "next_promotion", "promotion_pool", "protocol_for",
           "reusable_scores", "rung_entry", "scoring_fingerprint", "top_rung"]
