"""Fitness: offline formula and components, custom callables, return through the simulator on a tiny dataset."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from _train_data import synthetic_data

from symloss import bench
from symloss.bench import token_logps
from symloss.objectives import dpo, orpo
from symloss.train import (
    FitnessContext,
    PopulationTrainer,
    TrainConfig,
    expert_loglik,
    holdout_accuracy,
    offline_fitness,
    prepare_data,
)


@pytest.fixture(scope="module")
def data():
    return synthetic_data()


def test_reference_has_chance_accuracy_and_its_own_expert_loglik(data):
    assert holdout_accuracy(data.spec, data.reference, data).item() == 0.5  # every log-ratio is 0: ties
    h = data.holdout
    logp = token_logps(data.spec, data.reference, h["expert_obs"], h["expert_bins"])[0]
    expected = logp[h["expert_mask"]].mean()
    torch.testing.assert_close(expert_loglik(data.spec, data.reference, data)[0], expected)


def test_offline_formula(data):
    ctx = FitnessContext(data, TrainConfig(offline_ll_weight=0.25), torch.zeros(1), torch.zeros(1))
    out = offline_fitness(data.spec, data.reference, ctx)
    expected = 0.75 * out["accuracy"] + 0.25 * (1 + out["expert_loglik"] / math.log(data.spec.n_bins))
    torch.testing.assert_close(out["fitness"], expected)


def test_accuracy_uses_clean_labels(data):
    # flipping every clean label turns accuracy a into 1 - a (ties count 1/2 either way)
    h = data.holdout
    flipped = dict(data.holdout, better_is_chosen=~h["better_is_chosen"])
    params = {k: v.expand(2, *v.shape[1:]).clone() for k, v in data.reference.items()}
    params["b2"][1] += torch.randn(params["b2"][1].shape, generator=torch.Generator().manual_seed(0))
    acc = holdout_accuracy(data.spec, params, data)
    acc_flipped = holdout_accuracy(data.spec, params, type(data)(data.spec, data.reference, data.train, flipped))
    torch.testing.assert_close(acc + acc_flipped, torch.ones(2, dtype=acc.dtype))


def test_offline_fitness_of_a_trained_population(data):
    result = PopulationTrainer(TrainConfig(steps=5, batch_size=8, lr=1e-2, fitness="offline")).fit(
        [dpo(), orpo()], data, seeds=2)
    assert torch.isfinite(result.fitness_per_seed).all()
    assert ((result.metrics["accuracy"] >= 0) & (result.metrics["accuracy"] <= 1)).all()
    assert (result.metrics["expert_loglik"] < 0).all()


def test_custom_fitness_callable_gets_members_and_may_return_metrics(data):
    calls = []

    def score(spec, params, context):
        calls.append((context.candidates.tolist(), context.seeds.tolist()))
        n = params["W0"].shape[0]
        return {"fitness": context.candidates.double() * 10 + context.seeds, "size": torch.full((n,), float(n))}

    cfg = TrainConfig(steps=2, batch_size=4, fitness=score, max_members_per_chunk=4)
    result = PopulationTrainer(cfg).fit([dpo(), orpo(), dpo(beta=1.0)], data, seeds=[0, 1])
    assert calls == [([0, 0, 1, 1, 2, 2], [0, 1, 0, 1, 0, 1])]  # one call for all chunks
    assert result.fitness_per_seed.tolist() == [[0, 1], [10, 11], [20, 21]]
    assert result.fitness.tolist() == [0.5, 10.5, 20.5] and result.fitness_std.tolist() == [0.5] * 3
    assert result.metrics["size"].tolist() == [[6, 6]] * 3


def test_custom_fitness_with_wrong_length_is_an_error(data):
    cfg = TrainConfig(steps=1, batch_size=4, fitness=lambda spec, params, ctx: torch.zeros(1))
    with pytest.raises(ValueError, match="fitness: returned 1 values for 2 members; expected Tensor"):
        PopulationTrainer(cfg).fit([dpo(), orpo()], data, seeds=1)


def test_return_fitness_on_a_tiny_hopper_dataset(tmp_path):
    ds = bench.build_dataset("hopper", "noisy", cache_dir=tmp_path, n_pairs=40, seg_len=10, progress=False)
    spec = bench.spec_for_dataset(ds, hidden=(16,))
    reference = bench.fit_reference(spec, ds, steps=5, batch_size=16)
    data = prepare_data(ds, spec, reference, holdout_fraction=0.25)
    assert data.env == "hopper" and data.n_train == 30 and data.holdout["expert_obs"].shape[0] > 0
    cfg = TrainConfig(steps=3, batch_size=8, episodes=2, eval_seed=4)
    result = PopulationTrainer(cfg).fit([dpo(), orpo()], data, seeds=1)
    mean, _ = bench.evaluate(spec, result.params, "hopper", episodes=2, seed=4, action=cfg.action,
                             temperature=cfg.temperature)
    torch.testing.assert_close(result.fitness_per_seed[:, 0], mean.double())
    assert (result.fitness > 0).all()


def test_return_fitness_batches_give_the_same_returns(tmp_path, monkeypatch):
    """Scoring is one simulator batch per fit; splitting it (EVAL_MAX_ENVS) changes no return."""
    from symloss.train import _fitness

    ds = bench.build_dataset("hopper", "noisy", cache_dir=tmp_path, n_pairs=40, seg_len=10, progress=False)
    spec = bench.spec_for_dataset(ds, hidden=(16,))
    data = prepare_data(ds, spec, bench.fit_reference(spec, ds, steps=5, batch_size=16), holdout_fraction=0.25)
    cfg = TrainConfig(steps=3, batch_size=8, episodes=2, max_members_per_chunk=2)
    whole = PopulationTrainer(cfg).fit([dpo(), orpo()], data, seeds=2)
    monkeypatch.setattr(_fitness, "EVAL_MAX_ENVS", 2)  # one member per simulator batch
    split = PopulationTrainer(cfg).fit([dpo(), orpo()], data, seeds=2)
    assert torch.equal(whole.fitness_per_seed, split.fitness_per_seed)


def test_per_seed_start_states_give_each_seed_its_own_block(tmp_path, monkeypatch):
    """With start_states="per_seed", the members of training seed s (every loss) play reset(seed=eval_seed + s E + e),
    whichever call trains them; the batching of the simulator changes nothing."""
    from symloss.train import _fitness

    ds = bench.build_dataset("hopper", "noisy", cache_dir=tmp_path, n_pairs=40, seg_len=10, progress=False)
    spec = bench.spec_for_dataset(ds, hidden=(16,))
    data = prepare_data(ds, spec, bench.fit_reference(spec, ds, steps=5, batch_size=16), holdout_fraction=0.25)
    cfg = TrainConfig(steps=3, batch_size=8, episodes=2, eval_seed=4, start_states="per_seed")
    result = PopulationTrainer(cfg).fit([dpo(), orpo()], data, seeds=[7, 3])
    for k, seed in enumerate((7, 3)):
        members = {name: v[k::2] for name, v in result.params.items()}  # seed k of both losses (member p S + k)
        mean, _ = bench.evaluate(spec, members, "hopper", episodes=2, action=cfg.action,
                                 starts=bench.per_seed_starts(4, [seed, seed], 2))
        torch.testing.assert_close(result.fitness_per_seed[:, k], mean.double())
    alone = PopulationTrainer(cfg).fit([dpo(), orpo()], data, seeds=[3])  # seed 3 without seed 7: the same block
    assert torch.equal(alone.fitness_per_seed[:, 0], result.fitness_per_seed[:, 1])
    shared = PopulationTrainer(replace(cfg, start_states="shared", eval_seed=4 + 3 * 2)).fit([dpo(), orpo()], data,
                                                                                           seeds=[3])
    assert torch.equal(shared.fitness_per_seed[:, 0], result.fitness_per_seed[:, 1])  # states 10, 11
    monkeypatch.setattr(_fitness, "EVAL_MAX_ENVS", 2)  # one member per simulator batch: the starts are sliced too
    split = PopulationTrainer(cfg).fit([dpo(), orpo()], data, seeds=[7, 3])
    assert torch.equal(split.fitness_per_seed, result.fitness_per_seed)


def test_the_return_fitness_scores_the_protocols_horizon(tmp_path):
    """``horizon`` reaches the simulator: the fitness is the mean return of the first H steps, and a horizon past
    the environment's episodes is refused before any work."""
    from symloss.train import BenchmarkFitness

    ds = bench.build_dataset("hopper", "noisy", cache_dir=tmp_path, n_pairs=40, seg_len=10, progress=False)
    spec = bench.spec_for_dataset(ds, hidden=(16,))
    data = prepare_data(ds, spec, bench.fit_reference(spec, ds, steps=5, batch_size=16), holdout_fraction=0.25)
    cfg = TrainConfig(steps=3, batch_size=8, episodes=2, eval_seed=4, horizon=7)
    result = PopulationTrainer(cfg).fit([dpo(), orpo()], data, seeds=[0])
    mean, _ = bench.evaluate(spec, result.params, "hopper", episodes=2, seed=4, action=cfg.action, horizon=7)
    torch.testing.assert_close(result.fitness_per_seed[:, 0], mean.double())
    full, _ = bench.evaluate(spec, result.params, "hopper", episodes=2, seed=4, action=cfg.action)
    assert (full.abs() > mean.abs() + 1).all()  # 7 steps are far from a whole episode
    assert TrainConfig.from_spec("final:horizon=500").horizon == 500
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match="horizon"):
            TrainConfig(horizon=bad)
    with pytest.raises(ValueError, match="horizon=1500: hopper's episodes end after 1000 steps"):
        BenchmarkFitness(env="hopper", dataset="noisy", protocol=replace(cfg, horizon=1500)).validate()


def test_start_state_seeds_of_a_protocol():
    shared = TrainConfig(seeds=3, episodes=4, eval_seed=10)
    assert shared.start_state_seeds == range(10, 14)
    assert replace(shared, start_states="per_seed").start_state_seeds == range(10, 22)  # seeds 0, 1, 2
    assert replace(shared, start_states="per_seed", first_seed=100).start_state_seeds == range(410, 422)
    with pytest.raises(ValueError, match="start_states='every'"):
        TrainConfig(start_states="every")
