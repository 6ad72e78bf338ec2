"""The whole MPO template (issue 14 item 6): searching ``link``, ``imitation`` and temporally-aware (TA) slots
works from the API and from the CLI on the real benchmark, at a tiny size.

The dataset cache (``$SYMLOSS_CACHE``) is one temporary directory for the module: a 64-pair Hopper ``noisy``
set and an SFT reference fitted with 5 Adam steps instead of 1500, stored under the key the search reads
(the full fit takes minutes on 2 cores; these tests check that every slot trains, is scored by the
simulator and comes back from best.json, not the reference's quality).
"""

from __future__ import annotations

import json

import pytest

from symloss import bench
from symloss.bench import _reference
from symloss.cli import main
from symloss.expr import SYMBOLS, parse_formula
from symloss.integrations import load_loss
from symloss.objectives import SLOT_SPECS
from symloss.search import LossSearch, SearchConfig, benchmark_fitness
from symloss.search._es_search import es_generation, es_initial_state
from symloss.search._evolve import base_loss

N_PAIRS = 64
TINY = {"env": "hopper", "dataset": "noisy", "n_pairs": N_PAIRS, "population": 4, "generations": 1, "elite": 1,
        "seed": 1, "steps": 3, "batch_size": 8, "seeds": 1, "episodes": 1, "confirm": 0, "baselines": "none",
        "rungs": ()}
"""A search of 4 + 3 candidates, each trained 3 steps on 1 seed and scored on 1 episode of the simulator."""
_T = SYMBOLS["t"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """``$SYMLOSS_CACHE`` for the module: the tiny dataset and a cheap reference under the search's key."""
    root = tmp_path_factory.mktemp("symloss-cache")
    patch = pytest.MonkeyPatch()
    patch.setenv("SYMLOSS_CACHE", str(root))
    ds = bench.build_dataset("hopper", "noisy", n_pairs=N_PAIRS, cache_dir=root, progress=False)
    fit = bench.fit_reference

    def cheap(spec, ds, **kw):
        return fit(spec, ds, **{**kw, "steps": 5})

    with pytest.MonkeyPatch.context() as inner:
        inner.setattr(_reference, "fit_reference", cheap)  # what load_reference calls
        bench.load_reference(ds, bench.spec_for_dataset(ds), cache_dir=root)
    yield root
    patch.undo()


def _check_best(run_dir, slot: str, search_best=None):
    """best.json loads back into a loss whose ``slot`` is the evolved one, as the search reported it."""
    stored = json.loads((run_dir / "best.json").read_text())
    loaded = load_loss(run_dir / "best.json")
    assert stored[slot] is not None and getattr(loaded, slot) is not None
    if search_best is not None:
        assert getattr(loaded, slot) == getattr(search_best, slot)
    return stored, loaded


@pytest.mark.parametrize("slot", ["link", "imitation"])
def test_api_searches_one_slot_on_the_benchmark(cache, tmp_path, slot):
    search = LossSearch(slots=(slot,), run_dir=str(tmp_path / "run"), progress=False, **TINY).fit()
    hof = search.hall_of_fame_
    assert not hof.empty and slot in hof.columns and "mirror" not in hof.columns
    assert hof["fitness_mean"].iloc[0] > -1e29  # trained and scored, not failed
    _, loaded = _check_best(tmp_path / "run", slot, search.best_)
    assert str(loaded.mirror) == "u"  # the slots that do not evolve are the base loss's (DPO)


def _uses_t(formula: str, slot: str) -> bool:
    return _T in parse_formula(formula, SLOT_SPECS[slot]).free_symbols


def test_api_searches_temporally_aware_slots(cache, tmp_path):
    # seed_zoo=False: 4 individuals would all be the zoo's t-free forms; random trees over (u, t) instead
    search = LossSearch(slots=("mirror", "link"), temporal=True, seed_zoo=False, run_dir=str(tmp_path / "run"),
                        progress=False, **TINY).fit()
    trained = [r["formulas"] for r in search.state_.cache.values() if not r["reason"]]
    assert any(_uses_t(f[slot], slot) for f in trained for slot in f), "no trained candidate depends on t"
    stored, loaded = _check_best(tmp_path / "run", "link", search.best_)
    assert stored["search"]["temporal"] is True and loaded.mirror == search.best_.mirror


@pytest.mark.parametrize("slot, temporal", [("link", False), ("imitation", False), ("mirror", True)])
def test_cli_searches_each_slot_on_the_benchmark(cache, tmp_path, slot, temporal, capsys):
    argv = ["search", "--slots", slot, "--temporal" if temporal else "--no-temporal", "--n-pairs", str(N_PAIRS),
            "--population", "4", "--generations", "1", "--elite", "1", "--seed", "1", "--steps", "3",
            "--batch-size", "8", "--seeds", "1", "--episodes", "1", "--confirm", "0", "--baselines", "none",
            "--rungs", "", "--run-dir", str(tmp_path / "run"), "--no-progress"]
    assert main(argv) == 0
    assert "hall of fame" in capsys.readouterr().out
    stored, loaded = _check_best(tmp_path / "run", slot)
    assert stored["search"]["slots"] == [slot] and stored["search"]["temporal"] is temporal
    if not temporal:
        assert not loaded.uses_progress


def test_es_generation_trains_its_maps_on_the_benchmark(cache):
    """``--method es``'s step with the benchmark's own fitness: every map of the data-range basis trains and
    is scored (none is rejected or non-finite on the data's summed log-probs)."""
    config = SearchConfig.from_dict({**TINY, "population": 3})
    fitness = benchmark_fitness(config, progress=False)
    u_range = fitness.u_ranges(base_loss(config).aggregation)["mirror"]
    state, metrics, evaluated = es_generation(es_initial_state(config, u_range), config, fitness)
    assert metrics["failed"] == 0 and len(evaluated) == 3
    assert all(result.ok and result.seeds == (result.seeds[0],) for _, result in evaluated)
    assert state.best_score == max(result.mean for _, result in evaluated)
