"""Population trainer: plain-loop parity, determinism, shared minibatches, NaN isolation, chunking."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from _train_data import synthetic_data

from symloss.objectives import MirrorLoss, dpo, orpo, ta_mpo
from symloss.train import PopulationTrainer, TrainConfig, seed_soup, train_single

CFG = TrainConfig(steps=12, batch_size=8, lr=1e-2, fitness="offline")


@pytest.fixture(scope="module")
def data():
    return synthetic_data()


def _fit(losses, data, seeds=2, **kw):
    return PopulationTrainer(dataclasses.replace(CFG, **kw)).fit(losses, data, seeds=seeds)


class Bomb(MirrorLoss):
    """DPO whose loss turns non-finite (or raises, or has a NaN gradient) from progress t >= 1/2 on."""

    def __init__(self, mode: str = "nan") -> None:
        super().__init__("u", "softplus(-z)", beta=0.1, name=f"bomb-{mode}")
        self.mode = mode

    def __call__(self, batch, *, validate=True):
        out = super().__call__(batch, validate=validate)
        if batch.progress < 0.5:
            return out
        if self.mode == "raise":
            raise RuntimeError("boom")
        if self.mode == "grad":  # finite value, NaN gradient: d sqrt(x)/dx at 0 is inf, times 0
            return dataclasses.replace(out, loss=out.loss + torch.sqrt(out.loss * 0))
        return dataclasses.replace(out, loss=out.loss * math.nan)


@pytest.mark.parametrize("loss", [dpo(), orpo(), ta_mpo()], ids=["dpo", "orpo", "ta_mpo"])
def test_one_member_reproduces_plain_loop(data, loss):
    params, losses = train_single(loss, data, CFG, seed=3)
    result = PopulationTrainer(CFG).fit([loss], data, seeds=[3])
    torch.testing.assert_close(result.curves["loss"][0, 0], losses, rtol=0, atol=1e-6)
    for k, v in params.items():
        torch.testing.assert_close(result.params[k][:1], v, rtol=0, atol=1e-6)


def test_deterministic_for_a_seed_and_seeds_differ(data):
    a, b = _fit([dpo(), orpo()], data), _fit([dpo(), orpo()], data)
    for k in a.curves:
        assert torch.equal(a.curves[k], b.curves[k])
    assert torch.equal(a.fitness_per_seed, b.fitness_per_seed)
    assert not torch.equal(a.curves["loss"][:, 0], a.curves["loss"][:, 1])  # seed 0 vs seed 1


def test_candidates_with_one_seed_share_minibatches(data):
    result = _fit([dpo(), dpo()], data, seeds=[5, 7])
    assert torch.equal(result.curves["loss"][0], result.curves["loss"][1])
    assert result.seeds == (5, 7) and result.fitness_per_seed.shape == (2, 2)


def test_result_layout(data):
    result = _fit([dpo(), orpo(), ta_mpo()], data, seeds=2)
    assert result.names == ("dpo", "orpo", "ta_dpo")
    assert all(v.shape == (3, 2, CFG.steps) for v in result.curves.values())
    assert result.fitness.shape == result.fitness_std.shape == (3,)
    torch.testing.assert_close(result.fitness, result.fitness_per_seed.mean(1))
    assert result.status == ("ok", "ok", "ok") and (result.failure_step == -1).all()
    assert list(result.to_frame().columns) == ["name", "fitness", "fitness_std", "status", "failure_step", "reason"]
    one = result.member_params(1, 1)
    assert torch.equal(one["W0"][0], result.params["W0"][3])
    assert set(result.metrics) == {"accuracy", "expert_loglik"}


def test_exploding_member_fails_alone_bit_identical(data):
    boom = MirrorLoss("exp(-50*u)", "softplus(-z)", beta=0.1, name="boom")  # checks would reject it
    with_boom = _fit([dpo(), boom, orpo()], data)
    without = _fit([dpo(), dpo(beta=0.5), orpo()], data)
    removed = _fit([dpo(), orpo()], data)
    assert with_boom.status == ("ok", "failed", "ok")
    assert "non-finite loss" in with_boom.reason[1] and with_boom.failure_step[1].tolist() == [0, 0]
    assert math.isnan(with_boom.fitness[1]) and torch.isnan(with_boom.fitness_per_seed[1]).all()
    for other, rows in ((without, (0, 2)), (removed, (0, 1))):
        for mine, theirs in zip((0, 2), rows):
            for k in with_boom.curves:
                assert torch.equal(with_boom.curves[k][mine], other.curves[k][theirs])
            assert torch.equal(with_boom.fitness_per_seed[mine], other.fitness_per_seed[theirs])
            for k in with_boom.params:
                assert torch.equal(with_boom.params[k][2 * mine:2 * mine + 2], other.params[k][2 * theirs:2 * theirs + 2])


@pytest.mark.parametrize("mode", ["nan", "raise", "grad"])
def test_late_failure_freezes_member_at_last_finite_params(data, mode):
    result = _fit([dpo(), Bomb(mode)], data, seeds=1)
    half = _fit([dpo(), dpo()], data, seeds=1, steps=CFG.steps // 2)  # same minibatches for the first half
    assert result.status == ("ok", "failed")
    assert result.failure_step[1, 0].item() == CFG.steps // 2
    expected = {"nan": "non-finite loss (nan)", "raise": "loss raised RuntimeError: boom",
                "grad": "non-finite gradient"}[mode]
    assert expected in result.reason[1]
    for k in result.params:
        assert torch.equal(result.params[k][1], half.params[k][1])
    assert torch.isnan(result.curves["loss"][1, 0, CFG.steps // 2 + 1:]).all()
    assert torch.isfinite(result.curves["loss"][1, 0, :CFG.steps // 2]).all()


@pytest.mark.parametrize(("chunk", "seeds"), [(2, 2), (3, 2), (4, 2), (2, 1)])
def test_chunking_gives_the_same_results(data, chunk, seeds):
    losses = [dpo(), orpo(), MirrorLoss("exp(-50*u)", "softplus(-z)", name="boom")]
    whole, chunked = _fit(losses, data, seeds), _fit(losses, data, seeds, max_members_per_chunk=chunk)
    for k in whole.curves:
        assert torch.equal(whole.curves[k].nan_to_num(7.0), chunked.curves[k].nan_to_num(7.0))
    for k in whole.params:
        assert torch.equal(whole.params[k], chunked.params[k])
    assert torch.equal(whole.fitness_per_seed.nan_to_num(7.0), chunked.fitness_per_seed.nan_to_num(7.0))
    assert whole.failure_reason == chunked.failure_reason


def test_chunks_of_one_member_agree_to_float_rounding(data):
    whole, single = _fit([dpo(), orpo()], data), _fit([dpo(), orpo()], data, max_members_per_chunk=1)
    torch.testing.assert_close(whole.curves["loss"], single.curves["loss"], rtol=0, atol=1e-6)


def test_memory_budget_splits_population(data):
    trainer = PopulationTrainer(dataclasses.replace(CFG, memory_budget_mb=0.05))
    assert 1 <= trainer.chunk_size(data, 64, 2) < 64
    assert PopulationTrainer(CFG).chunk_size(data, 64, 2) == 64


def test_progress_is_step_over_total_steps(data):
    seen = []

    class Spy(MirrorLoss):
        def __call__(self, batch, *, validate=True):
            seen.append(batch.progress)
            return super().__call__(batch, validate=validate)

    _fit([Spy("u", "softplus(-z)")], data, seeds=1, steps=4)
    assert seen == [0.0, 0.25, 0.5, 0.75]


def test_cuda_graph_is_ignored_on_cpu(data):
    plain, graph = _fit([dpo(), orpo()], data, cuda_graph=False), _fit([dpo(), orpo()], data, cuda_graph=True)
    for k in plain.curves:
        assert torch.equal(plain.curves[k], graph.curves[k])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(data):
    cpu = _fit([dpo(), orpo()], data)
    gpu = _fit([dpo(), orpo()], data, device="cuda")
    torch.testing.assert_close(gpu.curves["loss"], cpu.curves["loss"], rtol=1e-4, atol=1e-4)
    assert gpu.params["W0"].device.type == "cpu"


def test_progress_bar_changes_nothing(data, capsys):
    quiet = _fit([dpo(), orpo()], data, max_members_per_chunk=2)
    shown = PopulationTrainer(dataclasses.replace(CFG, max_members_per_chunk=2)).fit([dpo(), orpo()], data, seeds=2,
                                                                                    progress=True)
    assert torch.equal(quiet.curves["loss"], shown.curves["loss"])
    err = capsys.readouterr().err
    assert "training 4 members" in err and "24/24" in err  # 2 chunks x 12 steps
    # captured stderr is not a terminal: one plain line per tenth of the steps, not an animated bar
    lines = [line for line in err.splitlines() if line.startswith("training 4 members:")]
    assert len(lines) == 10 and lines[0].startswith("training 4 members: 3/24 steps (10%)")
    assert lines[-1].startswith("training 4 members: 24/24 steps (100%)")


def test_per_member_minibatches_reproduce_plain_loops(data):
    """With two seeds every member has its own minibatch (the per-token path of each group is not shared)."""
    result = PopulationTrainer(CFG).fit([orpo()], data, seeds=[3, 4])
    for s, seed in enumerate((3, 4)):
        _, losses = train_single(orpo(), data, CFG, seed=seed)
        torch.testing.assert_close(result.curves["loss"][0, s], losses, rtol=0, atol=1e-6)


def test_float_masks_train_like_bool_masks(data):
    floats = dataclasses.replace(data, train={k: v.float() if k.endswith("_mask") else v for k, v in data.train.items()})
    a, b = _fit([dpo(), orpo()], data), _fit([dpo(), orpo()], floats)
    assert torch.equal(a.curves["loss"], b.curves["loss"])


def test_fail_records_tensor_step():
    from symloss.train._step import _fail_

    active, code, step = torch.tensor([True, True, False]), torch.zeros(3, dtype=torch.int64), torch.full((3,), -1)
    _fail_(active, torch.tensor([True, False, True]), code, step, 2, torch.tensor(7))
    assert active.tolist() == [False, True, False] and code.tolist() == [2, 0, 0] and step.tolist() == [7, -1, -1]


def test_float64_training_matches_a_textbook_tanh_network(data, monkeypatch):
    """The hand-written kernel (effective weights, sigmoid form) trains like autograd through torch.tanh."""
    from test_bench_policy import _row_major_logps

    spec = dataclasses.replace(data.spec, obs_shift=(0.1, -0.2, 0.0, 0.3, 0.5), obs_scale=(1.0, 2.0, 0.5, 1.5, 1.0))
    data64 = dataclasses.replace(data, spec=spec).to("cpu", torch.float64)
    cfg = dataclasses.replace(CFG, dtype="float64")
    result = PopulationTrainer(cfg).fit([orpo()], data64, seeds=[3])
    monkeypatch.setattr("symloss.train._single.token_logps", _row_major_logps)
    params, losses = train_single(orpo(), data64, cfg, seed=3)
    torch.testing.assert_close(result.curves["loss"][0, 0], losses, rtol=0, atol=1e-10)  # measured: 4e-16
    for k, v in params.items():
        torch.testing.assert_close(result.params[k], v, rtol=0, atol=1e-10)  # measured: 3e-15


def test_ema_is_the_moving_average_of_the_step_by_step_weights(data):
    """theta_bar_k = d theta_bar_{k-1} + (1 - d) theta_k from theta_bar_0 = the reference, checked against the
    weights of runs stopped after 1, 2, ..., K steps (DPO ignores the progress t, so those runs share a path)."""
    decay, steps = 0.7, 4
    cfg = dataclasses.replace(CFG, steps=steps, dtype="float64")
    averaged = PopulationTrainer(dataclasses.replace(cfg, ema=decay)).fit([dpo()], data.to("cpu", torch.float64),
                                                                           seeds=[5])
    plain = PopulationTrainer(cfg).fit([dpo()], data.to("cpu", torch.float64), seeds=[5])
    expected = {k: v.to(torch.float64).clone() for k, v in data.reference.items()}
    for k in range(1, steps + 1):
        stopped = PopulationTrainer(dataclasses.replace(cfg, steps=k)).fit([dpo()], data.to("cpu", torch.float64),
                                                                           seeds=[5])
        expected = {name: decay * avg + (1 - decay) * stopped.params[name] for name, avg in expected.items()}
    for name, value in expected.items():
        torch.testing.assert_close(averaged.params[name], value, rtol=0, atol=1e-9)
        assert torch.equal(averaged.last_params[name], plain.params[name])  # the side track changes nothing
        assert not torch.allclose(averaged.params[name], plain.params[name])
    assert plain.last_params is None
    assert torch.equal(averaged.curves["loss"], plain.curves["loss"])


def test_ema_zero_scores_the_last_weights_and_bad_decays_are_refused(data):
    last = _fit([dpo(), orpo()], data, ema=0.0)
    for name, value in last.params.items():
        assert torch.equal(value, last.last_params[name])
    for bad in (1.0, -0.1, 2):
        with pytest.raises(ValueError, match="ema"):
            TrainConfig(ema=bad)


def test_checkpoint_steps_spread_over_the_last_half_and_too_many_are_refused():
    assert TrainConfig(steps=600, checkpoints=4).checkpoint_steps == [375, 450, 525, 600]
    assert TrainConfig(steps=7, checkpoints=1).checkpoint_steps == [7]
    assert TrainConfig(steps=8, checkpoints=4).checkpoint_steps == [5, 6, 7, 8]
    with pytest.raises(ValueError, match="checkpoints=5: .* needs steps >= 10"):
        TrainConfig(steps=9, checkpoints=5)
    with pytest.raises(ValueError, match="checkpoints"):
        TrainConfig(checkpoints=0)


@pytest.mark.parametrize("ema", [None, 0.5])
def test_checkpoints_are_the_weights_of_shorter_runs_and_the_fitness_is_their_mean(data, ema):
    """With K checkpoints the fitness is (1/K) sum_j f(theta_{t_j}); theta_{t_j} is checked against a run stopped
    after t_j steps (DPO ignores the progress t, so the runs share a path), in float64."""
    cfg = dataclasses.replace(CFG, steps=8, dtype="float64", ema=ema)
    data64 = data.to("cpu", torch.float64)
    result = PopulationTrainer(dataclasses.replace(cfg, checkpoints=2)).fit([dpo(), orpo()], data64, seeds=[5, 6])
    stopped = [PopulationTrainer(dataclasses.replace(cfg, steps=k)).fit([dpo(), orpo()], data64, seeds=[5, 6])
               for k in (6, 8)]
    assert len(result.checkpoints) == 2
    for checkpoint, run in zip(result.checkpoints, stopped):
        for name, value in run.params.items():
            torch.testing.assert_close(checkpoint[name], value, rtol=0, atol=1e-9)
    for name, value in result.params.items():
        assert torch.equal(value, result.checkpoints[-1][name])
    torch.testing.assert_close(result.fitness_per_seed, (stopped[0].fitness_per_seed + stopped[1].fitness_per_seed) / 2,
                               rtol=0, atol=1e-9)
    assert not torch.allclose(stopped[0].fitness_per_seed, stopped[1].fitness_per_seed)  # the mean is informative
    assert PopulationTrainer(cfg).fit([dpo()], data64, seeds=[5]).checkpoints is None


def test_soup_scores_each_losses_seed_averaged_weights_once_per_soup(data):
    """With soup = G, the fitness of every seed is the fitness of its soup's averaged weights (float64)."""
    def weight_norm(spec, params, ctx):  # nonlinear in the weights: a soup's score is not the seeds' mean score
        return params["W0"].flatten(1).square().sum(1).double()

    cfg = dataclasses.replace(CFG, steps=6, dtype="float64", fitness=weight_norm, seeds=4)
    data64 = data.to("cpu", torch.float64)
    seeds = [5, 6, 7, 8]
    plain = PopulationTrainer(cfg).fit([dpo(), orpo()], data64, seeds=seeds)
    souped = PopulationTrainer(dataclasses.replace(cfg, soup=2)).fit([dpo(), orpo()], data64, seeds=seeds)
    expected = seed_soup(plain.params, 2, 4, 2)["W0"].flatten(1).square().sum(1).double().reshape(2, 2)
    torch.testing.assert_close(souped.fitness_per_seed, expected.repeat_interleave(2, dim=1), rtol=0, atol=1e-9)
    torch.testing.assert_close(souped.fitness, expected.mean(1), rtol=0, atol=1e-9)
    for name, value in plain.params.items():  # the members' own weights are kept, only the scoring changes
        torch.testing.assert_close(souped.params[name], value, rtol=0, atol=0)
    assert (souped.fitness < plain.fitness - 1e-6).all()  # Jensen: |mean of W|^2 < mean of |W|^2 when seeds differ


def test_soup_must_divide_the_seeds(data):
    with pytest.raises(ValueError, match="soup=3: must divide seeds=4"):
        TrainConfig(seeds=4, soup=3)
    with pytest.raises(ValueError, match="3 seeds cannot be split into soups of 2"):
        PopulationTrainer(dataclasses.replace(CFG, seeds=2, soup=2)).fit([dpo()], data, seeds=[1, 2, 3])
