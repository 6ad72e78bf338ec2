"""Per-member Adam and clipping: each member equals its own torch.optim.Adam + clip_grad_norm_."""

from __future__ import annotations

import torch

from symloss.train import adam_init, adam_step_, clip_grads_, member_grad_norm


def _params(n, gen):
    return {"W": torch.randn(n, 4, 3, generator=gen), "b": torch.randn(n, 1, 3, generator=gen)}


def test_members_match_separate_torch_optimisers():
    gen = torch.Generator().manual_seed(0)
    n, lr, betas, eps, max_norm = 3, 0.05, (0.9, 0.99), 1e-8, 0.5
    stacked = _params(n, gen)
    singles = [{k: v[i].clone().requires_grad_(True) for k, v in stacked.items()} for i in range(n)]
    opts = [torch.optim.Adam(s.values(), lr=lr, betas=betas, eps=eps) for s in singles]
    state = adam_init(stacked)
    active = torch.ones(n, dtype=torch.bool)
    for _ in range(5):
        grads = {k: torch.randn(v.shape, generator=gen) * 3 for k, v in stacked.items()}
        for i, (s, opt) in enumerate(zip(singles, opts)):
            for k, p in s.items():
                p.grad = grads[k][i].clone()
            torch.nn.utils.clip_grad_norm_(s.values(), max_norm)
            opt.step()
        norm = member_grad_norm(grads)
        clip_grads_(grads, norm, active, max_norm)
        adam_step_(stacked, grads, state, active, lr=lr, betas=betas, eps=eps)
    for i, s in enumerate(singles):
        for k, p in s.items():
            torch.testing.assert_close(stacked[k][i], p.detach(), rtol=0, atol=1e-6)


def test_clipping_and_norms_are_per_member():
    grads = {"W": torch.zeros(2, 2, 2), "b": torch.zeros(2, 1, 2)}
    grads["W"][0, 0, 0], grads["b"][0, 0, 0] = 3.0, 4.0  # member 0: norm 5
    grads["W"][1, 1, 1] = 0.1  # member 1: norm 0.1, below the clip
    norm = member_grad_norm(grads)
    torch.testing.assert_close(norm, torch.tensor([5.0, 0.1]))
    clip_grads_(grads, norm, torch.ones(2, dtype=torch.bool), 1.0)
    torch.testing.assert_close(member_grad_norm(grads), torch.tensor([1.0, 0.1]), atol=1e-6, rtol=0)


def test_inactive_member_is_untouched_even_with_nan_gradients():
    gen = torch.Generator().manual_seed(1)
    params = _params(2, gen)
    before = {k: v.clone() for k, v in params.items()}
    state = adam_init(params)
    active = torch.tensor([True, False])
    grads = {k: torch.randn(v.shape, generator=gen) for k, v in params.items()}
    grads["W"][1] = float("nan")
    clip_grads_(grads, member_grad_norm(grads), active, 1.0)
    adam_step_(params, grads, state, active, lr=0.1, betas=(0.9, 0.999), eps=1e-8)
    for k in params:
        assert torch.equal(params[k][1], before[k][1])
        assert not torch.equal(params[k][0], before[k][0])
        assert torch.isfinite(state.exp_avg[k]).all() and torch.isfinite(state.exp_avg_sq[k]).all()


def test_device_step_count_matches_python_step_count():
    """The CUDA-graph path keeps k as a float64 tensor; the update equals the Python-int path to rounding."""
    gen = torch.Generator().manual_seed(1)
    a = _params(3, gen)
    b = {k: v.clone() for k, v in a.items()}
    sa, sb = adam_init(a), adam_init(b)
    sb.step = torch.tensor(0.0, dtype=torch.float64)
    active = torch.tensor([True, False, True])
    for _ in range(6):
        grads = {k: torch.randn(v.shape, generator=gen) for k, v in a.items()}
        adam_step_(a, grads, sa, active, lr=0.01, betas=(0.9, 0.999), eps=1e-8)
        adam_step_(b, grads, sb, active, lr=0.01, betas=(0.9, 0.999), eps=1e-8)
    assert sa.step == 6 and sb.step.item() == 6.0
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-7)
        assert not torch.equal(a[k][0], _params(3, torch.Generator().manual_seed(1))[k][0])
    assert torch.equal(a["W"][1], _params(3, torch.Generator().manual_seed(1))["W"][1])  # frozen member
