"""TrainConfig and PopulationTrainer.fit input checks: messages name the argument, the value, what is accepted."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from _train_data import synthetic_data

from symloss.bench import ENV_NAMES
from symloss.objectives import dpo
from symloss.train import BUDGETS, ENV_PROTOCOL, PROTOCOLS, SEARCH_PROTOCOL, PopulationTrainer, TrainConfig


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"steps": 0}, "steps=0: must be an integer >= 1"),
    ({"batch_size": 2.5}, "batch_size=2.5: must be an integer >= 1"),
    ({"episodes": -1}, "episodes=-1: must be an integer >= 1"),
    ({"lr": 0}, "lr=0: must be a finite number > 0"),
    ({"lr": float("inf")}, "lr=inf: must be a finite number > 0"),
    ({"lr": float("nan")}, "lr=nan: must be a finite number > 0"),
    ({"eps": -1e-8}, "eps=-1e-08: must be a finite number > 0"),
    ({"max_grad_norm": -1.0}, "max_grad_norm=-1.0: must be a finite number > 0; or None"),
    ({"max_grad_norm": float("inf")}, "max_grad_norm=inf: must be a finite number > 0"),
    ({"memory_budget_mb": 0}, "memory_budget_mb=0: must be a finite number > 0; or None"),
    ({"betas": (0.9, 1.0)}, "betas[1]=1.0: must be a finite number in [0, 1)"),
    ({"betas": (0.9,)}, "betas=(0.9,): must be 2 finite numbers (Adam's beta1, beta2); e.g. (0.9, 0.999)"),
    ({"fitness": "offlin"}, "fitness='offlin': must be one of ['return', 'offline'] or a callable (spec, params, "
                            "context) -> Tensor[N]; did you mean 'offline'?"),
    ({"device": "tpu"}, "device='tpu': must be 'cpu', 'cuda' or 'cuda:<index>'"),
    ({"device": "cuda:x"}, "device='cuda:x': must be 'cpu', 'cuda' or 'cuda:<index>'"),
    ({"dtype": "float16"}, "dtype='float16': must be one of ['float32', 'float64']"),
    ({"cuda_graph": "no"}, "cuda_graph='no': must be true or false"),
    ({"max_members_per_chunk": 0}, "max_members_per_chunk=0: must be an integer >= 1"),
    ({"offline_ll_weight": 2}, "offline_ll_weight=2: must be a finite number in [0, 1]"),
    ({"eval_seed": -1}, "eval_seed=-1: must be an integer >= 0"),
])
def test_bad_config_names_argument_value_and_accepted(kwargs, message):
    with pytest.raises(ValueError) as err:
        TrainConfig(**kwargs)
    assert message in str(err.value)


def test_trainer_applies_overrides():
    assert PopulationTrainer(steps=7).config.steps == 7
    trainer = PopulationTrainer(TrainConfig(steps=3, lr=0.5), steps=9)
    assert (trainer.config.steps, trainer.config.lr) == (9, 0.5)
    with pytest.raises(ValueError, match="steps=0: must be an integer >= 1"):
        PopulationTrainer(steps=0)


def test_config_is_frozen_and_keyword_only():
    cfg = TrainConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.steps = 3
    with pytest.raises(TypeError):
        TrainConfig(10)


def test_budgets():
    search, final = TrainConfig(), TrainConfig.from_budget("final", lr=3e-4)
    assert (search.steps, search.batch_size, search.episodes) == tuple(dataclasses.astuple(BUDGETS["search"]))
    assert (final.steps, final.batch_size, final.episodes, final.lr) == (*dataclasses.astuple(BUDGETS["final"]), 3e-4)
    assert final.steps * final.seeds > search.steps * search.seeds  # final costs more than the fidelity
    with pytest.raises(ValueError, match=r"budget='serch': must be one of \['final', 'search'\]; did you mean"):
        TrainConfig.from_budget("serch")
    with pytest.raises(ValueError, match="stepz: unknown TrainConfig field; did you mean 'steps'"):
        TrainConfig.from_budget("search", stepz=3)


@pytest.fixture(scope="module")
def data():
    return synthetic_data(n_pairs=16, seg_len=4)


@pytest.mark.parametrize(("losses", "seeds", "error", "message"), [
    ([], 1, ValueError, "losses=[]: give at least one MirrorLoss"),
    ([dpo(), "dpo"], 1, TypeError, "losses[1]: expected a MirrorLoss, got str"),
    ([dpo()], 0, ValueError, "seeds=0: must be >= 1"),
    ([dpo()], [1, 1], ValueError, "seeds=[1, 1]: must be a count >= 1 or a non-empty list of distinct integers"),
])
def test_bad_fit_arguments(data, losses, seeds, error, message):
    with pytest.raises(error) as err:
        PopulationTrainer(TrainConfig(steps=1, fitness="offline")).fit(losses, data, seeds=seeds)
    assert message in str(err.value)


def test_data_checks(data):
    with pytest.raises(TypeError, match="data: expected PreferenceData"):
        PopulationTrainer(TrainConfig(steps=1)).fit([dpo()], {"chosen_obs": 1})
    with pytest.raises(ValueError, match="fitness='return': data.env is None"):
        PopulationTrainer(TrainConfig(steps=1, fitness="return")).fit([dpo()], data)
    no_holdout = synthetic_data(n_pairs=16, seg_len=4, holdout_fraction=0.0)
    with pytest.raises(ValueError, match="fitness='offline': data has no held-out split"):
        PopulationTrainer(TrainConfig(steps=1, fitness="offline")).fit([dpo()], no_holdout)
    with pytest.raises(TypeError, match="config: expected a TrainConfig, got dict"):
        PopulationTrainer({"steps": 1})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_without_gpu_is_refused_by_the_config_before_any_work(device):
    with pytest.raises(ValueError, match=f"device='{device}': CUDA is not available here; use device='cpu'"):
        TrainConfig(steps=1, fitness="offline", device=device)
    assert TrainConfig(device="cpu").device == "cpu"  # the CPU path is checked and passes


def test_betas_from_json_list_become_a_tuple():
    assert TrainConfig(betas=[0.5, 0.9]).betas == (0.5, 0.9)


def test_protocol_presets_are_complete_named_and_overridable():
    assert set(PROTOCOLS) == {"search", "final"} and PROTOCOLS["search"] == TrainConfig(**SEARCH_PROTOCOL)
    plain = TrainConfig()  # the search's budget, scored plainly: last weights, minibatches with replacement
    assert (plain.steps, plain.seeds, plain.ema, plain.checkpoints, plain.sampling) == (600, 2, None, 1, "replacement")
    for preset in PROTOCOLS.values():  # issue 12: shuffled epochs, averaged weights at 4 late checkpoints
        assert (preset.sampling, preset.ema, preset.checkpoints) == ("epochs", 0.995, 4)
    final = TrainConfig.preset("final", seeds=3)
    assert (final.steps, final.batch_size, final.lr, final.max_grad_norm, final.episodes) == (600, 64, 3e-4, 1.0, 16)
    assert final.seeds == 3 and final.seed_list == [100, 101, 102] and TrainConfig().seed_list == [0, 1]
    assert set(final.seed_list).isdisjoint(TrainConfig().seed_list)  # the final protocol's seeds are fresh
    assert PROTOCOLS["final"].seeds == 10  # overrides copy, never change the preset
    with pytest.raises(ValueError, match=r"protocol='fianl': must be one of \['search', 'final'\]; did you mean "
                                         "'final'"):
        TrainConfig.preset("fianl")
    with pytest.raises(ValueError, match="lrr: unknown TrainConfig field; did you mean 'lr'"):
        TrainConfig.preset("search", lrr=1e-3)
    with pytest.raises(ValueError, match="seeds=0: must be an integer >= 1"):
        TrainConfig.preset("final", seeds=0)
    assert TrainConfig.preset("final").to_dict()["betas"] == [0.9, 0.999]
    assert TrainConfig.preset("final", **PROTOCOLS["final"].to_dict()) == PROTOCOLS["final"]


def test_an_environments_own_fields_apply_over_the_preset_and_under_explicit_overrides():
    for env, presets in ENV_PROTOCOL.items():  # every entry names a known environment, preset and field
        assert env in ENV_NAMES and set(presets) <= set(PROTOCOLS)
        for name, given in presets.items():
            config = TrainConfig.preset(name, env=env)
            assert {k: getattr(config, k) for k in given} == given
            untouched = {f.name for f in dataclasses.fields(TrainConfig)} - set(given)
            assert all(getattr(config, k) == getattr(PROTOCOLS[name], k) for k in untouched)
    tla = TrainConfig.preset("final", env="tla")
    assert (tla.horizon, tla.episodes, tla.seeds) == (500, 32, 10)
    assert (TrainConfig.preset("search", env="tla").horizon, TrainConfig.preset("search", env="tla").episodes) == (
        500, 16)
    assert TrainConfig.preset("final") == PROTOCOLS["final"]  # no environment: the preset as defined for all
    assert TrainConfig.preset("final", env="tla", horizon=None, episodes=16).horizon is None  # overrides win
    assert TrainConfig.preset("final", env="tla", seeds=3).episodes == 32
    assert TrainConfig.from_spec("final:seeds=4", env="tla") == TrainConfig.preset("final", env="tla", seeds=4)
    assert TrainConfig.from_spec("final:episodes=8", env="tla").episodes == 8
    with pytest.raises(ValueError, match="env='ant': unknown environment; accepted: hopper, tla"):
        TrainConfig.preset("final", env="ant")


def test_a_short_training_fits_the_presets_checkpoints_unless_they_are_given():
    assert [TrainConfig.preset("search", steps=t).checkpoints for t in (1, 2, 5, 8, 100)] == [1, 1, 2, 4, 4]
    assert TrainConfig.preset("final", steps=6, checkpoints=3).checkpoints == 3
    with pytest.raises(ValueError, match="checkpoints=4: spread over the last half of training, it needs steps >= 8"):
        TrainConfig.preset("final", steps=6, checkpoints=4)
    assert TrainConfig.from_spec("search:steps=4").checkpoint_steps == [3, 4]


def test_old_budget_names_still_work_with_a_future_warning():
    import symloss.train as train

    with pytest.warns(FutureWarning, match="BUDGETS is deprecated and will be removed in symloss 0.3; use "
                                           "symloss.train.PROTOCOLS"):
        budgets = train.BUDGETS
    assert (budgets["final"].steps, budgets["final"].episodes) == (PROTOCOLS["final"].steps, PROTOCOLS["final"].episodes)
    with pytest.warns(FutureWarning, match="from_budget is deprecated"):
        assert TrainConfig.from_budget("final") == PROTOCOLS["final"]
    with pytest.raises(AttributeError, match="no attribute 'BUDGET'"):
        train.BUDGET  # noqa: B018


def test_fit_defaults_to_the_protocols_seeds(data):
    result = PopulationTrainer(TrainConfig(steps=1, batch_size=4, fitness="offline", seeds=2, first_seed=7)).fit(
        [dpo()], data)
    assert result.seeds == (7, 8) and result.fitness_per_seed.shape == (1, 2)
    assert PopulationTrainer(TrainConfig(steps=1, batch_size=4, fitness="offline")).fit(
        [dpo()], data, seeds=[3]).seeds == (3,)  # an explicit seeds argument still wins


PROTOCOL_FIELDS = ("steps", "batch_size", "lr", "max_grad_norm", "seeds", "episodes")


def _protocol_literals(source: str) -> list[int]:
    """Lines where a protocol field gets a literal number: a parameter or class-field default, a keyword
    argument, or the default of an ``--option`` of argparse."""
    import ast

    def number(node):
        return isinstance(node, ast.Constant) and type(node.value) in (int, float)

    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.arguments):
            named = [*node.posonlyargs, *node.args][-len(node.defaults):] if node.defaults else []
            pairs = [*zip(named, node.defaults), *zip(node.kwonlyargs, node.kw_defaults)]
            lines += [d.lineno for a, d in pairs if a.arg in PROTOCOL_FIELDS and d is not None and number(d)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            lines += [node.lineno] if node.target.id in PROTOCOL_FIELDS and node.value and number(node.value) else []
        elif isinstance(node, ast.Call):
            lines += [k.value.lineno for k in node.keywords if k.arg in PROTOCOL_FIELDS and number(k.value)]
            flag = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
            if isinstance(flag, str) and flag.lstrip("-").replace("-", "_") in PROTOCOL_FIELDS:
                lines += [k.value.lineno for k in node.keywords if k.arg == "default" and number(k.value)]
    return lines


def test_each_protocol_field_has_one_default_in_the_package():
    """steps, lr, ... get their values in SEARCH_PROTOCOL / FINAL_PROTOCOL only: no literal default or copy in
    the layers that train (train, search, the CLI) or in paper_repro."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    files = [*(root / "symloss" / "train").glob("*.py"), *(root / "symloss" / "search").glob("*.py"),
             root / "symloss" / "cli.py", root / "symloss" / "_cli_config.py", *(root / "paper_repro").glob("*.py")]
    other = {"_es.py", "train_behaviour_policies.py"}  # their lr and steps are OpenAI-ES's and PPO's, not a protocol's
    hits = [f"{p.relative_to(root)}:{line}" for p in files if p.name not in other
            for line in _protocol_literals(p.read_text())]
    assert hits == []
    assert _protocol_literals("def f(*, steps: int = 100, lr=None): ...\nclass C:\n    lr: float = 1e-4\n"
                              "g(batch_size=32)\np.add_argument('--episodes', type=int, default=5)\n") == [1, 3, 4, 5]
