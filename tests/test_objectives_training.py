"""The noise-robust zoo losses end to end: `symloss zoo` lists them, PopulationTrainer trains them (Dr. DPO's
batch reduction per member), and they can be the base loss of a search."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from _train_data import synthetic_data

import symloss as sl
from symloss.cli import main
from symloss.objectives import LOSSES, get_loss
from symloss.search import MirrorTargetFitness, SearchConfig, build_operators
from symloss.train import PopulationTrainer, TrainConfig, train_single

ROBUST = ["ropo", "holder_dpo", "sympo", "repo", "drdpo"]
CFG = TrainConfig(steps=6, batch_size=8, lr=1e-2, fitness="offline")


@pytest.fixture(scope="module")
def data():
    return synthetic_data()


def test_zoo_command_prints_every_loss(capsys):
    assert main(["zoo"]) == 0
    printed = capsys.readouterr().out
    for name in LOSSES:
        assert f"{name}:\n" in printed
    assert r"\mathcal{L}_{\mathrm{batch}}" in printed  # Dr. DPO's batch reduction is shown


def test_robust_losses_train_in_the_population_trainer(data):
    losses = [get_loss(name) for name in ROBUST]
    result = PopulationTrainer(CFG).fit(losses, data, seeds=[0, 1])
    assert result.curves["loss"].shape == (len(ROBUST), 2, CFG.steps)
    assert torch.isfinite(result.curves["loss"]).all() and torch.isfinite(result.curves["grad_norm"]).all()
    assert torch.isfinite(result.fitness_per_seed).all()


def test_drdpo_in_the_population_trainer_reduces_per_member_as_the_plain_loop(data):
    drdpo = sl.objectives.drdpo(beta_prime=0.2)
    _, plain = train_single(drdpo, data, CFG, seed=3)  # the readable loop: loss.reduce over its minibatch
    result = PopulationTrainer(CFG).fit([sl.objectives.dpo(), drdpo], data, seeds=[3])
    torch.testing.assert_close(result.curves["loss"][1, 0], plain, rtol=0, atol=1e-6)
    assert not torch.allclose(result.curves["loss"][0, 0], result.curves["loss"][1, 0])  # not the mean


def test_drdpo_with_one_pair_per_batch_trains_exactly_as_dpo(data):
    cfg = dataclasses.replace(CFG, batch_size=1)
    result = PopulationTrainer(cfg).fit([sl.objectives.dpo(), sl.objectives.drdpo(beta_prime=0.5)], data, seeds=[0])
    for curve in ("loss", "grad_norm"):
        torch.testing.assert_close(result.curves[curve][1], result.curves[curve][0], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ROBUST)
def test_robust_losses_can_be_the_base_of_a_search(name):
    config = SearchConfig(base=name, population=8, generations=1)
    ops = build_operators(config)
    assert ops.base == get_loss(name)
    search = sl.LossSearch(base=name, population=8, generations=1, seed_zoo=True, progress=False,
                           fitness=MirrorTargetFitness("u"))
    best = search.fit().best_
    assert (best.link, best.reduction, best.temperature) == (ops.base.link, ops.base.reduction,
                                                             ops.base.temperature)
