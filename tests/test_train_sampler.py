"""Minibatch streams: with replacement (the stream every stored result used) and shuffled epochs."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from _train_data import synthetic_data

from symloss.objectives import dpo, orpo
from symloss.train import PopulationTrainer, TrainConfig, train_single
from symloss.train._sampler import MinibatchSampler
from symloss.validation import ConfigError


def _stream(mode: str, n: int, batch: int, steps: int, seed: int = 0) -> torch.Tensor:
    sampler = MinibatchSampler(n, batch, seed, mode)
    return torch.stack([sampler.next() for _ in range(steps)])


def test_replacement_is_the_old_randint_stream():
    gen = torch.Generator().manual_seed(11)
    old = torch.stack([torch.randint(0, 50, (8,), generator=gen) for _ in range(20)])
    assert torch.equal(_stream("replacement", 50, 8, 20, seed=11), old)


@pytest.mark.parametrize(("n", "batch", "steps"), [(40, 8, 15), (37, 8, 30), (10, 10, 4), (5, 3, 7)])
def test_epochs_see_every_pair_equally_often(n, batch, steps):
    idx = _stream("epochs", n, batch, steps)
    assert idx.shape == (steps, batch) and idx.min() >= 0 and idx.max() < n
    counts = torch.bincount(idx.flatten(), minlength=n)
    full = steps * batch // n
    assert counts.min() >= full and counts.max() <= full + 1  # floor(T B / n) or one more
    flat = idx.flatten()
    for e in range(steps * batch // n):  # each whole epoch is a permutation
        assert torch.equal(flat[e * n:(e + 1) * n].sort().values, torch.arange(n))


def test_replacement_reweights_the_pairs():
    counts = torch.bincount(_stream("replacement", 100, 50, 40).flatten(), minlength=100)
    assert counts.max() - counts.min() > 1  # 20 +- 4.4 per pair: the spread epochs remove


def test_streams_are_seeded():
    for mode in ("replacement", "epochs"):
        assert torch.equal(_stream(mode, 30, 4, 12, seed=5), _stream(mode, 30, 4, 12, seed=5))
        assert not torch.equal(_stream(mode, 30, 4, 12, seed=5), _stream(mode, 30, 4, 12, seed=6))


def test_bad_mode_is_refused():
    with pytest.raises(ValueError, match="sampling='shuffle'"):
        MinibatchSampler(10, 2, 0, "shuffle")
    with pytest.raises(ConfigError, match="sampling"):
        TrainConfig(sampling="shuffle")
    assert TrainConfig.from_spec("final:sampling=epochs").sampling == "epochs"
    assert TrainConfig().sampling == "replacement" and TrainConfig.preset("final").sampling == "epochs"


@pytest.fixture(scope="module")
def data():
    return synthetic_data()


def test_population_in_epochs_reproduces_plain_loop_and_differs_from_replacement(data):
    cfg = TrainConfig(steps=12, batch_size=8, lr=1e-2, fitness="offline", sampling="epochs")
    params, losses = train_single(dpo(), data, cfg, seed=3)
    result = PopulationTrainer(cfg).fit([dpo(), orpo()], data, seeds=[3, 4])
    torch.testing.assert_close(result.curves["loss"][0, 0], losses, rtol=0, atol=1e-6)
    for k, v in params.items():
        torch.testing.assert_close(result.params[k][:1], v, rtol=0, atol=1e-6)
    again = PopulationTrainer(cfg).fit([dpo(), orpo()], data, seeds=[3, 4])
    assert torch.equal(result.curves["loss"], again.curves["loss"])
    other = PopulationTrainer(dataclasses.replace(cfg, sampling="replacement")).fit([dpo()], data, seeds=[3])
    assert not torch.equal(other.curves["loss"][0, 0], losses)
