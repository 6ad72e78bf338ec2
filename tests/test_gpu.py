"""CUDA checks: the same code path as on CPU gives the same numbers, isolation and chunking hold on the GPU.

Marked ``gpu`` and skipped without CUDA; run them with ``pytest -m gpu``.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from _train_data import synthetic_data

from symloss.bench import TokenPolicySpec, init_params, token_logps
from symloss.objectives import LogpBatch, MirrorLoss, dpo, ipo, orpo, ta_mpo
from symloss.train import PopulationTrainer, TrainConfig

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

CFG = TrainConfig(steps=12, batch_size=8, lr=1e-2, fitness="offline", cuda_graph=False)  # eager unless a test asks


@pytest.fixture(scope="module")
def data():
    return synthetic_data()


def _fit(losses, data, seeds=2, **kw):
    return PopulationTrainer(dataclasses.replace(CFG, **kw)).fit(losses, data, seeds=seeds)


def test_token_logps_and_gradients_match_cpu_in_float64():
    spec = TokenPolicySpec(obs_dim=11, act_dim=3, n_bins=11, hidden=(64, 64))
    gen = torch.Generator().manual_seed(0)
    params = {k: v.double() for k, v in init_params(spec, 5, gen).items()}
    obs, bins = torch.randn(7, 9, 11, generator=gen, dtype=torch.float64), torch.randint(0, 11, (7, 9, 3), generator=gen)
    weights = torch.randn(5, 7, 27, generator=gen, dtype=torch.float64)
    outs = {}
    for device in ("cpu", "cuda"):
        p = {k: v.to(device).requires_grad_(True) for k, v in params.items()}
        logp = token_logps(spec, p, obs.to(device), bins.to(device))
        grads = torch.autograd.grad((logp * weights.to(device)).sum(), list(p.values()))
        outs[device] = [logp, *grads]
    for a, b in zip(outs["cpu"], outs["cuda"]):
        torch.testing.assert_close(b.cpu(), a, rtol=1e-10, atol=1e-12)


def test_compiled_losses_match_cpu():
    gen = torch.Generator().manual_seed(1)
    shape = (4, 6, 10)
    t = {k: -torch.nn.functional.softplus(torch.randn(shape, generator=gen, dtype=torch.float64))
         for k in ("w", "l", "rw", "rl")}
    mask = torch.rand(shape, generator=gen) < 0.8
    for loss in (dpo(), orpo(), ipo(), ta_mpo(), MirrorLoss("log(1 + 0.643 / square(u))", "softplus(-z)")):
        vals = []
        for device in ("cpu", "cuda"):
            x = {k: v.to(device).requires_grad_(True) for k, v in t.items()}
            batch = LogpBatch(x["w"], x["l"], mask.to(device), mask.to(device), x["rw"], x["rl"],
                              progress=0.3)
            out = loss(batch).loss
            vals.append([out, *torch.autograd.grad(out.sum(), [x["w"], x["l"]])])
        for a, b in zip(*vals):
            torch.testing.assert_close(b.cpu(), a, rtol=1e-9, atol=1e-12, msg=loss.name)


def test_population_matches_cpu_with_per_member_minibatches(data):
    cpu = _fit([dpo(), orpo(), ta_mpo()], data, seeds=2)
    gpu = _fit([dpo(), orpo(), ta_mpo()], data, seeds=2, device="cuda")
    torch.testing.assert_close(gpu.curves["loss"], cpu.curves["loss"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(gpu.fitness_per_seed, cpu.fitness_per_seed, rtol=1e-3, atol=1e-3)
    assert gpu.params["W0"].device.type == "cpu"


def test_deterministic_on_cuda(data):
    a = _fit([dpo(), orpo()], data, device="cuda")
    b = _fit([dpo(), orpo()], data, device="cuda")
    for k in a.curves:
        assert torch.equal(a.curves[k], b.curves[k]), k
    for k in a.params:
        assert torch.equal(a.params[k], b.params[k]), k


def test_exploding_member_fails_alone_on_cuda(data):
    """Same population size with and without the exploding member: the others are bit-identical."""
    boom = MirrorLoss("exp(-50*u)", "softplus(-z)", beta=0.1, name="boom")
    bad = _fit([dpo(), boom, orpo()], data, device="cuda")
    good = _fit([dpo(), dpo(beta=0.5), orpo()], data, device="cuda")
    assert bad.status[1] == "failed" and bad.status[0] == bad.status[2] == "ok"
    for i in (0, 2):
        assert torch.equal(bad.curves["loss"][i], good.curves["loss"][i])
        for k in bad.params:
            assert torch.equal(bad.params[k][2 * i:2 * i + 2], good.params[k][2 * i:2 * i + 2])
    assert math.isnan(bad.fitness[1])


def test_chunking_on_cuda(data):
    whole = _fit([dpo(), orpo(), ipo()], data, device="cuda")
    chunks = _fit([dpo(), orpo(), ipo()], data, device="cuda", max_members_per_chunk=2)
    torch.testing.assert_close(chunks.curves["loss"], whole.curves["loss"], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(chunks.fitness_per_seed, whole.fitness_per_seed, rtol=1e-6, atol=1e-6)


LATE = MirrorLoss("u / relu(0.3 - t)", "softplus(-z)", beta=0.1, name="late")  # non-finite from t >= 0.3 (step 4)


def _same_up_to_rounding(a, b):
    for k in a.curves:
        torch.testing.assert_close(a.curves[k].nan_to_num(7.0), b.curves[k].nan_to_num(7.0), rtol=1e-5, atol=1e-5)
    for k in a.params:
        torch.testing.assert_close(a.params[k], b.params[k], rtol=1e-5, atol=1e-5)
    assert a.status == b.status and torch.equal(a.failure_step, b.failure_step)


def test_cuda_graph_matches_eager_and_catches_failures_during_replay(data, caplog):
    losses = [dpo(), orpo(), ta_mpo(), LATE]
    eager = _fit(losses, data, device="cuda")
    graph = _fit(losses, data, device="cuda", cuda_graph=True)
    assert "capture failed" not in caplog.text  # the graph was recorded and replayed, no eager fallback
    assert graph.status == ("ok", "ok", "ok", "failed") and graph.failure_step[3].tolist() == [4, 4]
    _same_up_to_rounding(graph, eager)


def test_cuda_graph_with_normalised_observations_and_chunks(data, caplog):
    spec = dataclasses.replace(data.spec, obs_shift=(0.1, -0.2, 0.0, 0.3, 0.5), obs_scale=(2.0, 1.0, 0.5, 1.5, 3.0))
    shifted = dataclasses.replace(data, spec=spec)
    eager = _fit([dpo(), orpo(), ipo()], shifted, device="cuda")
    graph = _fit([dpo(), orpo(), ipo()], shifted, device="cuda", cuda_graph=True, max_members_per_chunk=4)
    assert "capture failed" not in caplog.text
    _same_up_to_rounding(graph, eager)


def test_cuda_graph_trains_custom_call_losses_eagerly(data):
    class Custom(MirrorLoss):
        def __call__(self, batch, *, validate=True):
            return super().__call__(batch, validate=validate)

    custom = Custom("u", "softplus(-z)", beta=0.1, name="custom")
    eager = _fit([dpo(), custom], data, device="cuda")
    graph = _fit([dpo(), custom], data, device="cuda", cuda_graph=True)
    for k in eager.curves:
        assert torch.equal(eager.curves[k], graph.curves[k])
