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
