"""TrainConfig and PopulationTrainer.fit input checks: messages name the argument, the value, what is accepted."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from _train_data import synthetic_data

from symloss.objectives import dpo
from symloss.train import BUDGETS, PopulationTrainer, TrainConfig


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
    assert final.steps > search.steps
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
