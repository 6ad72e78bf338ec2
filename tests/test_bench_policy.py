"""Token policies: shapes, member independence, tokenisation, SFT reference determinism."""

from __future__ import annotations

import pytest
import torch

from symloss.bench import (
    TokenPolicySpec,
    act,
    build_dataset,
    detokenize,
    fit_reference,
    init_params,
    pair_tensors,
    spec_for_dataset,
    token_logps,
    token_mask,
    tokenize,
)


@pytest.fixture()
def spec():
    return TokenPolicySpec(obs_dim=5, act_dim=2, n_bins=9, hidden=(16,))


def test_token_logps_shape_and_member_independence(spec):
    params = init_params(spec, 4, torch.Generator().manual_seed(0))
    obs, bins = torch.randn(3, 6, 5), torch.randint(0, 9, (3, 6, 2))
    logp = token_logps(spec, params, obs, bins)
    assert logp.shape == (4, 3, 12)
    assert (logp <= 0).all()
    solo = token_logps(spec, {k: v[1:2] for k, v in params.items()}, obs, bins)
    torch.testing.assert_close(solo[0], logp[1])
    per_member = token_logps(spec, params, obs.expand(4, -1, -1, -1), bins.expand(4, -1, -1, -1))
    torch.testing.assert_close(per_member, logp)


def _row_major_logps(spec, params, obs, bins):
    """The textbook form, one member at a time: rows x features, softmax over the last axis."""
    out = []
    for n in range(params["W0"].shape[0]):
        x = (obs.reshape(-1, spec.obs_dim) - torch.tensor(spec.obs_shift, dtype=obs.dtype)) / torch.tensor(
            spec.obs_scale, dtype=obs.dtype)
        for i in range(spec.n_layers):
            x = x @ params[f"W{i}"][n] + params[f"b{i}"][n]
            x = torch.tanh(x) if i < spec.n_layers - 1 else x
        logp = torch.log_softmax(x.view(-1, spec.act_dim, spec.n_bins), -1)
        out.append(logp.gather(-1, bins.reshape(-1, spec.act_dim, 1)).reshape(obs.shape[0], -1))
    return torch.stack(out)


def test_token_logps_match_row_major_reference_with_gradients():
    spec = TokenPolicySpec(obs_dim=4, act_dim=3, n_bins=7, hidden=(8, 6), obs_shift=(0.5, -1.0, 0.0, 2.0),
                           obs_scale=(2.0, 1.0, 0.5, 3.0))
    gen = torch.Generator().manual_seed(3)
    params = {k: (v + 0.3 * torch.randn(v.shape, generator=gen, dtype=v.dtype)).double().requires_grad_(True)
              for k, v in init_params(spec, 3, gen).items()}
    obs, bins = torch.randn(5, 4, 4, generator=gen, dtype=torch.float64), torch.randint(0, 7, (5, 4, 3), generator=gen)
    weights = torch.randn(3, 5, 12, generator=gen, dtype=torch.float64)
    got = token_logps(spec, params, obs, bins)
    want = _row_major_logps(spec, params, obs, bins)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    g_got = torch.autograd.grad((got * weights).sum(), list(params.values()))
    g_want = torch.autograd.grad((want * weights).sum(), list(params.values()))
    for a, b in zip(g_got, g_want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(lambda w: token_logps(spec, {**params, "W1": w}, obs, bins),
                                    (params["W1"].detach().clone().requires_grad_(True),))


def test_token_logps_float32_per_member_and_shared_inputs_agree_with_torch_tanh():
    spec = TokenPolicySpec(obs_dim=5, act_dim=2, n_bins=9, hidden=(16, 16), obs_shift=[0.1] * 5, obs_scale=[2.0] * 5)
    gen = torch.Generator().manual_seed(5)
    params = init_params(spec, 3, gen)
    obs, bins = torch.randn(4, 6, 5, generator=gen), torch.randint(0, 9, (4, 6, 2), generator=gen)
    want = _row_major_logps(spec, params, obs, bins)  # torch.tanh
    torch.testing.assert_close(token_logps(spec, params, obs, bins), want, rtol=0, atol=2e-6)
    per_member = token_logps(spec, params, obs.expand(3, -1, -1, -1), bins.expand(3, -1, -1, -1))
    torch.testing.assert_close(per_member, want, rtol=0, atol=2e-6)


def test_token_logps_is_differentiable_once_only(spec):
    params = {k: v.requires_grad_(True) for k, v in init_params(spec, 2, torch.Generator().manual_seed(6)).items()}
    logp = token_logps(spec, params, torch.randn(3, 4, 5), torch.randint(0, 9, (3, 4, 2)))
    (g,) = torch.autograd.grad(logp.sum(), [params["W0"]], create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|does not require grad"):
        torch.autograd.grad(g.sum(), [params["W0"]])


def test_token_probabilities_normalise(spec):
    params = init_params(spec, 2, torch.Generator().manual_seed(1))
    obs = torch.randn(1, 1, 5).expand(9, 1, 5).contiguous()
    bins = torch.arange(9).view(9, 1, 1).expand(9, 1, 2)
    probs = token_logps(spec, params, obs, bins).exp().sum(1)  # sum over all bins: [N, 2]
    torch.testing.assert_close(probs, torch.ones(2, 2))


def test_act_and_tokenize_round_trip(spec):
    params = init_params(spec, 3, torch.Generator().manual_seed(2))
    a = act(spec, params, torch.randn(3, 4, 5))
    assert a.shape == (3, 4, 2) and a.abs().max() <= 1
    torch.testing.assert_close(detokenize(spec, tokenize(spec, a)), a)
    sampled = act(spec, params, torch.randn(3, 4, 5), greedy=False, generator=torch.Generator().manual_seed(0))
    assert sampled.shape == (3, 4, 2)
    assert tokenize(spec, torch.tensor([-5.0, 5.0])).tolist() == [0, 8]


def test_token_mask():
    m = token_mask(torch.tensor([1, 3]), 3, 2)
    assert m.tolist() == [[True, True, False, False, False, False], [True] * 6]


def test_spec_validation_names_argument():
    with pytest.raises(ValueError, match="n_bins=1"):
        TokenPolicySpec(obs_dim=3, act_dim=1, n_bins=1)
    with pytest.raises(ValueError, match="obs_shift: length 2"):
        TokenPolicySpec(obs_dim=3, act_dim=1, obs_shift=(0.0, 0.0))


def test_fit_reference_is_deterministic_and_learns(tmp_path):
    ds = build_dataset("hopper", "clean", n_pairs=40, seg_len=20, cache_dir=tmp_path, progress=False)
    spec = spec_for_dataset(ds, n_bins=5, hidden=(16,))
    p1 = fit_reference(spec, ds, steps=60, batch_size=16, seed=4)
    p2 = fit_reference(spec, ds, steps=60, batch_size=16, seed=4)
    for k in p1:
        assert torch.equal(p1[k], p2[k])
    data = pair_tensors(ds, spec)
    p0 = fit_reference(spec, ds, steps=0, seed=4)

    def nll(p):
        lp = token_logps(spec, p, data["chosen_obs"], data["chosen_bins"])[0]
        m = data["chosen_mask"].float()
        return float(-(lp * m).sum() / m.sum())

    assert nll(p1) < nll(p0) - 0.1
