"""Multi-fidelity search: promotion per generation, rung caching with seed reuse, resume inside a promotion,
baselines in the same run, and the hall of fame ranked by rung (a synthetic fitness: no simulator)."""

from __future__ import annotations

import hashlib
import json
import math

import pytest

from symloss.search import FitnessResult, LossSearch, MirrorTargetFitness
from symloss.search._rungs import missing_seeds, next_promotion, protocol_for
from symloss.train import TrainConfig


class SeededTarget:
    """Per-seed score = closeness to a target map - a small seed-dependent offset; records every call."""

    def __init__(self, protocol: TrainConfig | None = None, calls: list | None = None,
                 fail_after: int | None = None) -> None:
        self.protocol = protocol or TrainConfig.preset("search")
        self.target = MirrorTargetFitness("-plog(u)")
        self.calls = [] if calls is None else calls
        self.fail_after = fail_after

    def at(self, protocol: TrainConfig) -> SeededTarget:
        return SeededTarget(protocol, self.calls, self.fail_after)

    def __call__(self, losses):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt  # a kill in the middle of the run
        seeds = tuple(self.protocol.seed_list)
        self.calls.append((len(losses), seeds))
        out = []
        for loss in losses:
            base = -self.target.distance(loss)
            if not math.isfinite(base):
                out.append(FitnessResult(-1e30, reason="not finite"))
                continue
            per_seed = tuple(base + 0.01 * (int(hashlib.sha1(f"{s}".encode()).hexdigest(), 16) % 7) for s in seeds)
            mean = sum(per_seed) / len(per_seed)
            std = (sum((v - mean) ** 2 for v in per_seed) / len(per_seed)) ** 0.5
            out.append(FitnessResult(mean, std, "", seeds, per_seed))
        return out


def _search(tmp_path, fitness, **changes):
    config = dict(population=6, generations=2, seed=3, confirm=0, baselines="small", rungs=("seeds=6",),
                  promote_fraction=0.34, run_dir=str(tmp_path / "run"))
    config.update(changes)
    return LossSearch(fitness=fitness, progress=False, **config)


def test_promotion_trains_only_missing_seeds_and_ranks_by_rung(tmp_path):
    fitness = SeededTarget()
    search = _search(tmp_path, fitness).fit()
    cache = search.state_.cache
    # rung 1 reused the 2 rung-0 seeds: every rung-1 call trained seeds 2..5 only
    rung1_calls = [seeds for _, seeds in fitness.calls if seeds != (0, 1)]
    assert rung1_calls and all(seeds == (2, 3, 4, 5) for seeds in rung1_calls)
    promoted = {k: r for k, r in cache.items() if r["rung"] == 1}
    for record in promoted.values():
        assert record["rungs"]["1"]["seeds"] == [0, 1, 2, 3, 4, 5]
        assert record["rungs"]["1"]["per_seed"][:2] == record["rungs"]["0"]["per_seed"]
        assert record["mean"] == record["rungs"]["1"]["mean"]
    # per generation and kind, exactly the best ceil(0.34 n) of the generation's valid rung-0 losses were promoted
    for generation in range(3):
        for kind in ("discovered", "baseline"):
            pool = sorted(((r["rungs"]["0"]["mean"], -r["complexity"], k) for k, r in cache.items()
                           if r["generation"] == generation and r.get("kind") == kind and not r["rungs"]["0"]["reason"]),
                          reverse=True)
            if not pool:
                continue
            chosen = {k for *_, k in pool[: max(1, math.ceil(0.34 * len(pool)))]}  # ties: simplest, then key
            assert {k for *_, k in pool if cache[k]["rung"] == 1} == chosen
    # the hall of fame lists every rung-1 row before any rung-0 row, baselines among them
    rungs = search.hall_of_fame_["rung"].tolist()
    assert rungs == sorted(rungs, reverse=True)
    assert set(search.hall_of_fame_["kind"]) == {"discovered", "baseline"}
    assert (search.hall_of_fame_.loc[search.hall_of_fame_["rung"] == 1, "seeds"] == 6).all()
    assert search.best_ is not None and search.best_.name.startswith("symloss_")


def test_rung_helpers():
    ladder = [TrainConfig.preset("search"), TrainConfig.preset("search", seeds=6)]
    record = {"rungs": {"0": {"mean": 1.0, "std": 0.0, "seeds": [0, 1], "per_seed": [1.0, 1.0], "reason": ""}}}
    assert missing_seeds(record, ladder, 1) == (2, 3, 4, 5)
    assert protocol_for(ladder, 1, (2, 3, 4, 5)).seed_list == [2, 3, 4, 5]
    assert protocol_for(ladder, 1, (2, 5)) == ladder[1]  # not contiguous: the whole rung
    other = [ladder[0], TrainConfig.preset("search", seeds=6, episodes=16)]  # other scoring: nothing reusable
    assert missing_seeds(record, other, 1) == (0, 1, 2, 3, 4, 5)
    averaged = [ladder[0], TrainConfig.preset("search", seeds=6, ema=0.99)]  # other averaging scores otherwise
    assert missing_seeds(record, averaged, 1) == (0, 1, 2, 3, 4, 5)
    cache = {"a": {**record, "generation": 0, "kind": "discovered", "complexity": 1},
             "b": {"rungs": {"0": {**record["rungs"]["0"], "mean": 2.0}}, "generation": 0, "kind": "discovered",
                   "complexity": 1}}
    assert next_promotion(cache, 0, 2, 0.5) == (1, ["b"])
    assert next_promotion(cache, 1, 2, 0.5) is None


def test_resume_in_the_middle_of_a_promotion_matches_an_uninterrupted_run(tmp_path):
    three = {"rungs": ("seeds=4", "seeds=6")}
    reference = _search(tmp_path / "a", SeededTarget(), **three).fit()
    calls: list = []
    # generation 0: call 0 rung 0 (with the baselines), call 1 rung 1 (seeds 2, 3), call 2 rung 2: killed there
    killed = SeededTarget(calls=calls, fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        _search(tmp_path / "b", killed, **three).fit()
    assert [seeds for _, seeds in calls] == [(0, 1), (2, 3)]
    checkpoint = json.loads((tmp_path / "b" / "run" / "checkpoint.json").read_text())
    assert checkpoint["generation"] == 0
    assert {r["rung"] for r in checkpoint["cache"].values()} == {0, 1}  # the first promotion batch was saved
    resumed_calls: list = []
    resumed = LossSearch.resume(tmp_path / "b" / "run", fitness=SeededTarget(calls=resumed_calls),
                                progress=False).fit()
    assert resumed_calls[0][1] == (4, 5)  # it went on with the rest of the promotion: neither rung 0 nor rung 1
    assert resumed.state_.cache.keys() == reference.state_.cache.keys()
    for key, record in reference.state_.cache.items():
        assert resumed.state_.cache[key]["rungs"] == record["rungs"]
    assert resumed.hall_of_fame_["key"].tolist() == reference.hall_of_fame_["key"].tolist()


def test_a_fitness_without_at_has_one_rung(tmp_path):
    search = LossSearch(fitness=MirrorTargetFitness("-plog(u)"), progress=False, population=4, generations=1,
                        seed=1, confirm=0, baselines="none").fit()
    assert set(search.hall_of_fame_["rung"]) == {0}
    assert set(search.hall_of_fame_["kind"]) == {"discovered"}


class OnHopperRange(SeededTarget):
    """SeededTarget whose data lies where Hopper noisy's summed log-probs do: u in [-340, -70]."""

    def at(self, protocol):
        return OnHopperRange(protocol, self.calls, self.fail_after)

    def u_ranges(self, aggregation, widen=True):
        return {"mirror": (-560.0, -1e-4), "imitation": (-548.0, -1e-4)} if widen else \
            {"mirror": (-340.0, -70.0), "imitation": (-330.0, -70.0)}


def test_equivalent_forms_share_one_entry_and_flat_maps_never_train(tmp_path):
    from symloss.search._dedup import Signature, equivalent

    fitness = OnHopperRange()
    search = _search(tmp_path, fitness, population=8, generations=2, baselines="none").fit()
    cache = search.state_.cache
    records = [r for r in cache.values() if r.get("kind") == "discovered"]
    sigs = [Signature.from_json(r["signature"]) for r in records]
    assert all(not equivalent(a, b) for i, a in enumerate(sigs) for b in sigs[i + 1:])  # no two rows are one loss
    # the zoo's u, u - log1mexp(u) and u + tanh(u) are one loss on [-340, -70]: one row, its simplest form shown
    hof = search.hall_of_fame_
    row = hof[hof["expression"] == "mirror: u"]
    assert len(row) == 1 and row["forms"].iloc[0] >= 3 and row["family"].iloc[0] == "DPO, effective beta 0.1"
    assert search.history_["merged"].sum() >= 2
    # softplus(u) is flat there in float32: refused before training, so it has no entry
    assert not any(r["formulas"]["mirror"] == "softplus(u)" for r in records)
    trained = sum(n for n, seeds in fitness.calls if seeds == (0, 1))
    assert trained == len(records)  # every loss trained at rung 0 has exactly one entry (no baselines here)


def test_the_hall_of_fame_shows_one_row_per_loss_with_the_simplest_form():
    from symloss.search._artefacts import hall_of_fame_table

    entry = {"mean": 5.0, "std": 1.0, "seeds": [0, 1, 2], "per_seed": [4.0, 5.0, 6.0], "reason": ""}
    cache = {"mirror:aa": {"mean": 5.0, "std": 1.0, "reason": "", "complexity": 5, "generation": 0,
                           "kind": "discovered", "rung": 1, "rungs": {"0": entry, "1": entry},
                           "formulas": {"mirror": "plog(pdiv(-0.839, u))"}, "latex": {"mirror": "a"},
                           "aliases": [{"key": "mirror:bb", "complexity": 3, "formulas": {"mirror": "-plog(u)"},
                                        "latex": {"mirror": "b"}}]}}
    table = hall_of_fame_table(cache, 5)
    assert len(table) == 1
    row = table.iloc[0]
    assert row["expression"] == "mirror: -plog(u)" and row["forms"] == 2 and row["complexity"] == 3
    assert row["seeds"] == 3 and row["ci_low"] < 5.0 < row["ci_high"]


def test_fit_ends_with_the_held_out_confirmation_and_a_resume_does_not_redo_it(tmp_path):
    fitness = SeededTarget()
    search = _search(tmp_path, fitness, confirm=1, generations=1).fit()
    run = tmp_path / "run"
    held_out = [seeds for _, seeds in fitness.calls if seeds and seeds[0] >= 100]
    assert held_out == [tuple(range(100, 110))]  # one batched job on the final protocol's fresh seeds
    kinds = [c.kind for c in search.contenders()]
    assert kinds == ["discovered", "baseline"]
    report = (run / "report.md").read_text()
    assert report.count("Verdict: ") == 1 and "search fitness (not a result)" in report
    assert search.confirmation_.verdict.line() in report
    calls = len(fitness.calls)
    again = LossSearch.resume(run, fitness=fitness, progress=False).fit()
    assert len(fitness.calls) == calls and again.confirmation_ is None  # same contenders: nothing retrained
    assert sorted(p.name for p in run.glob("report*.md")) == ["report.md"]
