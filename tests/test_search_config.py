"""SearchConfig checks: every refusal names the field, the value and the accepted range or choices."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from symloss.search import LossSearch, SearchConfig, split_fields
from symloss.train import PROTOCOLS, TrainConfig
from symloss.validation import ConfigError


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"population": 0}, "population=0: must be an integer >= 2 (tournament selection needs two)"),
    ({"population": 4.0}, "population=4.0: must be an integer >= 2"),
    ({"elite": 16}, "elite=16: must be an integer in [0, 7] (fewer than population); lower elite or raise "
                    "population"),
    ({"elite": 2, "population": 2}, "elite=2: must be an integer in [0, 1]"),
    ({"generations": -1}, "generations=-1: must be an integer >= 0"),
    ({"seed": -3}, "seed=-3: must be an integer >= 0"),
    ({"tournament_size": 1}, "tournament_size=1: must be an integer >= 2"),
    ({"max_height": 13}, "max_height=13: must be an integer in [1, 12]"),
    ({"crossover_prob": 1.5}, "crossover_prob=1.5: must be a finite number in [0, 1] (a probability)"),
    ({"mutation_prob": math.nan}, "mutation_prob=nan: must be a finite number in [0, 1]"),
    ({"parsimony": math.inf}, "parsimony=inf: must be a finite number >= 0"),
    ({"parsimony": -0.1}, "parsimony=-0.1: must be a finite number >= 0"),
    ({"lr": math.inf}, "lr=inf: must be a finite number > 0"),
    ({"lr": 0.0}, "lr=0.0: must be a finite number > 0"),
    ({"beta": math.inf}, "beta=inf: must be a finite number > 0; or None for the base loss's beta"),
    ({"beta": -1.0}, "beta=-1.0: must be a finite number > 0"),
    ({"constant_sigma": -1.0}, "constant_sigma=-1.0: must be a finite number >= 0"),
    ({"steps": 0}, "steps=0: must be an integer >= 1"),
    ({"episodes": 0}, "episodes=0: must be an integer >= 1"),
    ({"seeds": 0}, "seeds=0: must be an integer >= 1"),
    ({"batch_size": 0}, "batch_size=0: must be an integer >= 1"),
    ({"hall_of_fame": 0}, "hall_of_fame=0: must be an integer >= 1"),
    ({"constant_range": (1.0,)}, "constant_range=(1.0,): must be 2 finite numbers (low, high); e.g. (-1.0, "
                                 "1.0)"),
    ({"constant_range": (1.0, math.inf)}, "constant_range=(1.0, inf): must be 2 finite numbers"),
    ({"constant_range": (1.0, -1.0)}, "constant_range=(1.0, -1.0): must be (low, high) with low < high"),
    ({"init_depth": (1, 2, 3)}, "init_depth=(1, 2, 3): must be 2 integers (min, max); e.g. (1, 4)"),
    ({"init_depth": (3, 9)}, "init_depth=(3, 9): must be (min, max) with 0 <= min <= max <= max_height=8"),
    ({"slots": ("mirorr",)}, "slots='mirorr': must be one of ['mirror', 'link', 'imitation']; did you mean "
                             "'mirror'?"),
    ({"slots": "mirror"}, "slots='mirror': must be a non-empty tuple of names"),
    ({"slots": ()}, "slots=(): must be a non-empty tuple of names"),
    ({"primitives": ()}, "primitives=(): must be a non-empty tuple of names"),
    ({"primitives": ("add", "sine")}, "primitives='sine': must be one of"),
    ({"selection": "nsga"}, "selection='nsga': must be one of ['parsimony', 'nsga2']; did you mean 'nsga2'?"),
    ({"base": "dpo2"}, "did you mean 'dpo'"),
    ({"fitness": "retrun"}, "fitness='retrun': must be one of ['return', 'offline']"),
    ({"executor": "slurm"}, "executor='slurm': must be one of ['local', 'ray']"),
    ({"device": "gpu"}, "device='gpu': must be 'cpu', 'cuda' or 'cuda:<index>'"),
    ({"seed_zoo": "no"}, "seed_zoo='no': must be true or false"),
    ({"env": "hoper"}, "env='hoper': unknown environment; accepted: hopper, tla; did you mean 'hopper'?"),
    ({"dataset": "noisey"}, "variant='noisey': unknown variant"),
    ({"n_pairs": 0}, "n_pairs=0: must be an integer >= 1"),
    ({"run_dir": 3}, "run_dir=3: must be a string or None"),
])
def test_bad_config_states_what_is_accepted(kwargs, message):
    with pytest.raises(ValueError) as err:
        SearchConfig.from_dict(kwargs)  # TrainConfig fields (steps, lr, ...) go to the protocol
    assert message in str(err.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_cuda_without_gpu_is_refused_at_once_unless_ray_workers_train():
    with pytest.raises(ConfigError, match="device='cuda': CUDA is not available here; use device='cpu'"):
        SearchConfig.from_dict({"device": "cuda"})
    assert SearchConfig.from_dict({"device": "cuda", "executor": "ray"}).train.device == "cuda"  # workers' GPUs


def test_round_trip_lists_and_unknown_fields():
    config = SearchConfig(slots=["mirror", "link"], constant_range=[-2.0, 2.0], n_pairs=64)
    assert config.slots == ("mirror", "link") and config.constant_range == (-2.0, 2.0)
    assert SearchConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="populaton: unknown SearchConfig field; did you mean 'population'"):
        SearchConfig.from_dict({"populaton": 3})
    with pytest.raises(ConfigError, match="expected a dict of fields, got list"):
        SearchConfig.from_dict([1, 2])


def test_stored_configs_without_new_fields_still_load():
    stored = SearchConfig().to_dict()
    del stored["n_pairs"]  # written before the field existed
    assert SearchConfig.from_dict(stored).n_pairs is None


FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_the_protocol_is_held_not_copied_and_flat_keywords_reach_it():
    config = SearchConfig.from_dict({"population": 8, "steps": 50, "lr": 3e-4, "seed": 4})
    assert config.population == 8 and config.protocol == "search"
    assert config.train == TrainConfig.preset("search", steps=50, lr=3e-4, eval_seed=4)  # episodes from seed
    assert LossSearch(population=8, steps=50, lr=3e-4, seed=4).config == config
    assert SearchConfig.from_dict({"protocol": "final"}).train.steps == PROTOCOLS["final"].steps
    assert SearchConfig.from_dict(config.to_dict()) == config == SearchConfig.from_dict(config.flat())
    assert split_fields({"population": 8, "steps": 50}) == ({"population": 8}, {"steps": 50})
    with pytest.raises(ConfigError, match="stpes: unknown SearchConfig field; did you mean 'steps'"):
        split_fields({"stpes": 5})
    with pytest.raises(ConfigError, match="fitness=<function"):
        SearchConfig(train=TrainConfig(fitness=lambda spec, params, ctx: None))
    with pytest.raises(ConfigError, match="give the protocol as train=TrainConfig"):
        SearchConfig.from_dict({"train": TrainConfig(), "steps": 3})


def test_a_search_takes_its_environments_protocol_for_its_rungs_and_its_confirmation():
    tla = SearchConfig(env="tla", rungs=("seeds=4",), confirm_protocol="final:seeds=3")
    assert tla.train == TrainConfig.preset("search", env="tla", eval_seed=tla.seed)
    assert (tla.train.horizon, tla.train.episodes) == (500, 16)
    assert [(r.horizon, r.episodes, r.seeds) for r in tla.rung_protocols()] == [(500, 16, 2), (500, 16, 4)]
    confirm = tla.confirmation_protocol()
    assert (confirm.horizon, confirm.episodes, confirm.seeds) == (500, 32, 3)
    assert not set(confirm.start_state_seeds) & set(tla.rung_protocols()[-1].start_state_seeds)
    hopper = SearchConfig(env="hopper", confirm_protocol="final:seeds=3")
    assert hopper.train.horizon is None and hopper.confirmation_protocol().episodes == PROTOCOLS["final"].episodes
    assert SearchConfig.from_dict(tla.to_dict()) == tla  # a stored run keeps the protocol it was trained with
    explicit = SearchConfig(env="tla", confirm_protocol="final:horizon=None:episodes=16")
    assert (explicit.confirmation_protocol().horizon, explicit.confirmation_protocol().episodes) == (None, 16)


def test_a_config_json_written_before_the_protocol_existed_still_loads():
    """tests/fixtures/config_before_protocols.json: SearchConfig(population=6, generations=1, seed=1, steps=20,
    episodes=2, fitness='offline').to_dict() as written by the version with flat protocol fields."""
    stored = json.loads((FIXTURES / "config_before_protocols.json").read_text())
    assert "train" not in stored and stored["steps"] == 20
    config = SearchConfig.from_dict(stored)
    assert config.train == TrainConfig.preset("search", steps=20, episodes=2, fitness="offline", eval_seed=1,
                                              batch_size=32, lr=1e-4, action="greedy")  # as that version trained
    assert (config.train.seeds, config.train.batch_size, config.train.lr) == (2, 32, 1e-4)
    assert config == SearchConfig.from_dict({**config.to_dict()})


def test_per_seed_start_states_are_held_out_as_a_whole_block():
    """The confirmation's start states are every block of its seeds (start_states=per_seed: seed s on
    eval_seed + s E ..): it moves past a per-seed rung's blocks, and a spec that overlaps any block is refused."""
    config = SearchConfig.from_dict({"seed": 9990, "start_states": "shared", "rungs": ("seeds=4:start_states=per_seed",),
                                     "confirm_protocol": "final:seeds=2:episodes=4:start_states=shared"})
    rung = config.rung_protocols()[-1]
    assert rung.seed_list == [0, 1, 2, 3] and rung.start_state_seeds == range(9990, 9990 + 4 * 8)
    confirm = config.confirmation_protocol()
    assert confirm.eval_seed == rung.start_state_seeds.stop == 10022  # moved past the whole block
    assert not set(confirm.start_state_seeds) & set(rung.start_state_seeds)
    shared = SearchConfig.from_dict({"seed": 9990, "start_states": "shared", "rungs": ("seeds=4",),
                                     "confirm_protocol": "final:seeds=2:episodes=4:start_states=shared"})
    assert shared.confirmation_protocol().eval_seed == 10000  # a shared rung's 8 states end at 9997
    with pytest.raises(ConfigError, match=r"starts an episode from reset\(seed=30\), which rung 1 also uses"):
        SearchConfig(seed=3, rungs=("seeds=4:start_states=per_seed",),
                     confirm_protocol="final:seeds=2:episodes=4:eval_seed=30:start_states=shared")
