"""Search internals: its own random generator, plots without pyplot, the data's u range in the checks."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _train_data import synthetic_data
from deap import gp

from symloss.expr import check_mirror, parse_formula, sympy_to_tree
from symloss.objectives import aggregate
from symloss.search import (
    Individual,
    LossSearch,
    MirrorTargetFitness,
    SearchConfig,
    ask,
    build_operators,
    tell,
    tree_from_string,
)
from symloss.search._evolve import initial_state, make_candidate
from symloss.search._rng import drawing_from
from symloss.train import BenchmarkFitness, TrainConfig, data_u_ranges

REPO = Path(__file__).resolve().parents[1]
TARGET = "softplus(u)"


# -- the search's own random generator -----------------------------------------------------------------------

def test_a_search_generation_leaves_the_global_random_state_alone():
    ops = build_operators(SearchConfig(population=12, selection="nsga2"))
    state = initial_state(5)
    random.seed(1234)
    before = random.getstate()
    for _ in range(3):  # initial trees, then NSGA-II selection, crossover, mutations, constant tuning
        candidates, state = ask(state, ops)
        fitness = MirrorTargetFitness(TARGET)
        valid = [c for c in candidates if c.loss is not None]
        state, _ = tell(state, candidates, dict(zip([c.key for c in valid], fitness([c.loss for c in valid]),
                                                    strict=True)), ops)
        assert random.getstate() == before


def test_the_search_does_not_depend_on_the_global_random_state():
    def run(global_seed):
        random.seed(global_seed)
        before = random.getstate()
        search = LossSearch(population=10, generations=2, seed=0, progress=False,
                            fitness=MirrorTargetFitness(TARGET)).fit()
        assert random.getstate() == before
        return search

    a, b = run(1), run(2)
    assert a.hall_of_fame_.equals(b.hall_of_fame_) and a.state_.rng_state == b.state_.rng_state


def test_drawing_from_lends_the_generator_and_restores_random_even_on_error():
    rng, twin = random.Random(7), random.Random(7)
    original = random.choice
    with pytest.raises(RuntimeError), drawing_from(rng):
        assert random.random() == twin.random() and random.choice("abc") == twin.choice("abc")
        raise RuntimeError
    assert random.choice is original and rng.getstate() == twin.getstate()


def test_an_old_checkpoint_with_the_global_rng_state_resumes_identically(tmp_path):
    full = LossSearch(population=8, generations=3, seed=2, progress=False, fitness=MirrorTargetFitness(TARGET)).fit()
    run_dir = tmp_path / "run"
    LossSearch(population=8, generations=1, seed=2, progress=False, fitness=MirrorTargetFitness(TARGET),
               run_dir=str(run_dir)).fit()
    data = json.loads((run_dir / "checkpoint.json").read_text())
    del data["u_ranges"]
    data["format"] = "symloss.search.checkpoint/1"  # what the version before its own generator wrote
    (run_dir / "checkpoint.json").write_text(json.dumps(data))
    resumed = LossSearch.resume(run_dir, fitness=MirrorTargetFitness(TARGET), progress=False, generations=3).fit()
    assert resumed.hall_of_fame_.equals(full.hall_of_fame_) and resumed.state_.u_ranges == {}
    assert json.loads((run_dir / "checkpoint.json").read_text())["format"] == "symloss.search.checkpoint/2"


# -- plots ------------------------------------------------------------------------------------------------------

def test_importing_and_plotting_leave_the_matplotlib_backend_alone(tmp_path):
    script = f"""
import sys
sys.path.insert(0, {str(REPO)!r})
import matplotlib
matplotlib.use("svg")
import symloss.search
from symloss.search import LossSearch, MirrorTargetFitness
LossSearch(population=6, generations=1, progress=False, fitness=MirrorTargetFitness("softplus(u)"),
           run_dir={str(tmp_path / "run")!r}).fit()
print(matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "MPLBACKEND"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["svg", "False"]
    for name in ("fitness.png", "pareto.png", "mirror.png"):
        assert (tmp_path / "run" / name).read_bytes()[:4] == b"\x89PNG"


# -- tree text --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("add(u, nan)", "unknown name 'nan'"), ("add(u, inf)", "unknown name 'inf'"),
    ("add(u, 1e999)", "constant '1e999' is not finite"), ("add(u, " + "x" * 500 + ")", "unknown name"),
])
def test_tree_text_refuses_non_finite_constants_and_unknown_names(text, message):
    pset = build_operators(SearchConfig()).psets["mirror"]
    with pytest.raises(ValueError, match=message) as info:
        tree_from_string(text, pset)
    assert len(str(info.value)) < 700


# -- the data's u range -----------------------------------------------------------------------------------------

BENDS = "u + 0.008*square(u)"
"""m'(u) = 1 + 0.016 u: increasing on [-50, 0) (where the default checks look), decreasing below -62.5."""


@pytest.fixture(scope="module")
def long_data():
    return synthetic_data(n_pairs=48, seg_len=64)  # 2 action dims: sums of up to 128 token log-probs


def _bends_candidate(ops):
    tree = gp.PrimitiveTree(sympy_to_tree(parse_formula(BENDS, ["u"]), ops.psets["mirror"]))
    return make_candidate(Individual({"mirror": tree}), ops)


@pytest.mark.parametrize("aggregation", ["sequence", "mean", "token"])
def test_data_u_ranges_follow_the_aggregation_the_loss_sees(long_data, aggregation):
    train = long_data.train
    how = "mean" if aggregation == "mean" else "sequence"
    if aggregation == "token":
        u = torch.cat([train[f"ref_{s}_logps"][train[f"{s}_mask"]] for s in ("chosen", "rejected")])
    else:
        u = torch.cat([aggregate(train[f"ref_{s}_logps"], train[f"{s}_mask"], how) for s in ("chosen", "rejected")])
    low, high = np.quantile(u.double().numpy(), [0.001, 0.999])
    got_low, got_high = data_u_ranges(train, aggregation)["mirror"]
    width = high - low
    assert got_low == pytest.approx(low - width / 2, rel=0.01) and got_low <= low - width / 2
    assert got_high == pytest.approx(min(high + width / 2, -1e-4), rel=0.01)
    assert got_low < got_high < 0


def test_the_search_rejects_a_map_that_bends_on_the_data_range_naming_the_range(long_data, tmp_path):
    fitness = BenchmarkFitness.from_data(long_data, TrainConfig(steps=1, batch_size=8, fitness="offline", seeds=1))
    expected = data_u_ranges(long_data.train, "sequence")
    assert expected["mirror"][0] < -100  # the data reaches far below the default range [-50, 0)
    run_dir = tmp_path / "run"
    search = LossSearch(population=4, generations=0, seed=0, progress=False, fitness=fitness,
                        run_dir=str(run_dir)).fit()
    assert search.state_.u_ranges == expected
    stored = json.loads((run_dir / "checkpoint.json").read_text())["u_ranges"]
    assert {k: tuple(v) for k, v in stored.items()} == expected
    low, high = expected["mirror"]
    reason = _bends_candidate(build_operators(search.config, u_ranges=search.state_.u_ranges)).reason
    assert "not strictly increasing" in reason and f"{low:g}" in reason and f"{high:g}" in reason
    default = _bends_candidate(build_operators(search.config)).reason  # the default range reaches -700: caught too
    assert "not strictly increasing" in default and "[-700, -1e-08]" in default


class RangedFitness(MirrorTargetFitness):
    """A user fitness that states the data's u range."""

    def __init__(self, mirror_range):
        super().__init__(TARGET)
        self.mirror_range = mirror_range

    def u_ranges(self, aggregation):
        return {"mirror": self.mirror_range}


def test_resume_uses_the_u_range_stored_when_the_run_started(tmp_path):
    run_dir = tmp_path / "run"
    LossSearch(population=8, generations=1, seed=1, progress=False, fitness=RangedFitness((-300.0, -1e-4)),
               run_dir=str(run_dir)).fit()
    resumed = LossSearch.resume(run_dir, fitness=RangedFitness((-5.0, -1.0)), progress=False, generations=2).fit()
    assert resumed.state_.u_ranges == {"mirror": (-300.0, -1e-4)}
    for record in resumed.state_.cache.values():  # every evaluated map passed the stored range's check
        assert check_mirror(parse_formula(record["formulas"]["mirror"], ["u"]), u_range=(-300.0, -1e-4))
    with pytest.raises(ValueError, match=r"fitness.u_ranges: mirror=\(0.0, -1.0\)"):
        LossSearch(population=8, generations=0, progress=False, fitness=RangedFitness((0.0, -1.0))).fit()


def test_search_progress_off_a_terminal_is_plain_lines_and_changes_nothing(capsys):
    quiet = LossSearch(population=8, generations=2, seed=2, progress=False, fitness=MirrorTargetFitness(TARGET)).fit()
    capsys.readouterr()
    shown = LossSearch(population=8, generations=2, seed=2, progress=True, fitness=MirrorTargetFitness(TARGET)).fit()
    err = capsys.readouterr().err  # captured: not a terminal, so no animated bar
    lines = [line for line in err.splitlines() if line.startswith("search [")]
    assert any(line.startswith("search [2/3,") and "gen 1 best" in line for line in lines)
    assert any(line.startswith("search [3/3,") and "gen 2 best" in line for line in lines)
    assert shown.history_.drop(columns="seconds").equals(quiet.history_.drop(columns="seconds"))  # wall time differs
