"""The noise-robust zoo losses (ROPO, Hölder-DPO, SymPO, RE-PO, Dr. DPO): NumPy references of values and
gradients on ragged batches, float32 extremes, their knobs, Dr. DPO's batch reduction, RE-PO's derivation,
and rDPO's unbounded loss at large margins."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_objectives_zoo import logsig, robust_reference, sigmoid_np

import symloss as sl
from symloss.objectives import LogpBatch, MirrorLoss, get_loss, reduce_pairs

ROBUST = ["ropo", "holder_dpo", "sympo", "repo", "drdpo"]
CASES = [("ropo", {}), ("ropo", {"alpha": 2.5, "beta": 0.3}), ("holder_dpo", {}), ("holder_dpo", {"gamma": 0.4}),
         ("sympo", {}), ("sympo", {"variant": "ramp"}), ("sympo", {"variant": "unhinged"}), ("repo", {}),
         ("repo", {"eta": 0.7, "beta": 0.2}), ("drdpo", {}), ("drdpo", {"beta_prime": 0.3, "beta": 0.5})]
B, TW, TL = 6, 7, 5


def ragged(seed=0, batch=B):
    """Per-token log-probs (chosen, rejected, ref chosen, ref rejected) and masks with ragged lengths, NumPy."""
    rng = np.random.default_rng(seed)
    arrays = [-rng.uniform(0.01, 2.0, (batch, t)) for t in (TW, TL, TW, TL)]
    w_mask, l_mask = np.ones((batch, TW), bool), np.ones((batch, TL), bool)
    w_mask[: batch // 2, 4:] = False
    l_mask[batch // 3:, 3:] = False
    return arrays, (w_mask, l_mask)


def as_batch(arrays, masks, dtype=torch.float64):
    xs = [torch.tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
    w, lm = (torch.tensor(m) for m in masks)
    return xs, LogpBatch(xs[0], xs[1], w, lm, xs[2], xs[3])


def np_margin(arrays, masks, beta):
    cw, rl, rcw, rrl = arrays
    w, lm = masks
    return beta * (((cw - rcw) * w).sum(-1) - ((rl - rrl) * lm).sum(-1))


def np_objective(name, arrays, masks, **kw):
    """The batch loss of the published formula: the mean of the per-pair losses (Dr. DPO: log-mean-exp)."""
    z = np_margin(arrays, masks, kw.get("beta", 0.1))
    if name == "drdpo":
        b = kw.get("beta_prime", 1.0)
        return -b * np.log(np.mean(np.exp(logsig(z) / b)))
    return np.mean(robust_reference(name, z, **kw))


def fd_grad(f, arrays, h=1e-6):
    """Central finite differences of the scalar ``f(arrays)`` with respect to every entry."""
    grads = []
    for k, x in enumerate(arrays):
        g = np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            up, down = [a.copy() for a in arrays], [a.copy() for a in arrays]
            up[k][idx] += h
            down[k][idx] -= h
            g[idx] = (f(up) - f(down)) / (2 * h)
        grads.append(g)
    return grads


def torch_value_and_grad(loss, arrays, masks):
    xs, batch = as_batch(arrays, masks)
    value = loss.reduce(loss(batch).loss)
    grads = torch.autograd.grad(value, xs)
    return value.item(), [g.numpy() for g in grads]


@pytest.mark.parametrize("name, kw", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_values_and_gradients_match_numpy_reference(name, kw):
    arrays, masks = ragged(seed=len(kw))
    z = np_margin(arrays, masks, kw.get("beta", 0.1))
    assert np.abs(np.abs(z) - 1).min() > 1e-3  # the ramp's kinks are not sampled by the differences
    loss = get_loss(name, **kw)
    value, grads = torch_value_and_grad(loss, arrays, masks)
    np.testing.assert_allclose(value, np_objective(name, arrays, masks, **kw), rtol=1e-6, atol=1e-12)
    for ours, ref in zip(grads, fd_grad(lambda a: np_objective(name, a, masks, **kw), arrays), strict=True):
        np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("eta, beta", [(0.9, 0.1), (0.6, 0.5), (0.99, 1.0)])
def test_repo_gradient_is_the_detached_em_objective(eta, beta):
    """RE-PO's published per-pair loss -[w log sigma(z) + (1 - w) log sigma(-z)] with the posterior
    w = eta sigma(z) / (eta sigma(z) + (1 - eta) sigma(-z)) held fixed: same gradient as the closed-form link."""
    arrays, masks = ragged(seed=3)
    z0 = np_margin(arrays, masks, beta)
    w = eta * sigmoid_np(z0) / (eta * sigmoid_np(z0) + (1 - eta) * sigmoid_np(-z0))  # the E-step, frozen

    def em(a):
        z = np_margin(a, masks, beta)
        return np.mean(-(w * logsig(z) + (1 - w) * logsig(-z)))

    _, grads = torch_value_and_grad(sl.objectives.repo(beta=beta, eta=eta), arrays, masks)
    for ours, ref in zip(grads, fd_grad(em, arrays), strict=True):
        np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-9)
    # the same with Torch's stop-gradient, and the simplification w = sigma(z + log(eta / (1 - eta)))
    np.testing.assert_allclose(w, sigmoid_np(z0 + np.log(eta / (1 - eta))), rtol=1e-12)
    xs, batch = as_batch(arrays, masks)
    margin = sl.objectives.dpo(beta=beta)(batch).margin
    post = eta * torch.sigmoid(margin) / (eta * torch.sigmoid(margin) + (1 - eta) * torch.sigmoid(-margin))
    detached = -(post.detach() * torch.nn.functional.logsigmoid(margin)
                 + (1 - post.detach()) * torch.nn.functional.logsigmoid(-margin)).mean()
    for ours, ref in zip(grads, torch.autograd.grad(detached, xs), strict=True):
        np.testing.assert_allclose(ours, ref.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", [*ROBUST, "rdpo", "dpo"])
def test_finite_in_float32_at_extreme_log_probs_and_margins(name):
    """Summed log-probs down to -1e4 and margins z = beta * Delta up to +-1e3, in float32."""
    gen = torch.Generator().manual_seed(7)
    cw, rl, rcw, rrl = (-torch.rand(64, 1, generator=gen) * 1e4 for _ in range(4))
    extremes = torch.tensor([[-1e-3, -1e4, -5e3, -5e3], [-1e4, -1e-3, -5e3, -5e3],  # z = +1e3, -1e3
                             [-1e4, -1e4, -1e4, -1e4], [-1e-3, -1e-3, -1e-3, -1e-3]])  # z = 0 at both ends
    xs = [torch.cat([x, extremes[:, k:k + 1]]).requires_grad_(True) for k, x in enumerate((cw, rl, rcw, rrl))]
    loss = get_loss(name)
    out = loss(LogpBatch(xs[0], xs[1], ref_chosen_logps=xs[2], ref_rejected_logps=xs[3]))
    assert out.margin.abs().max() >= 999.0
    total = loss.reduce(out.loss)
    total.backward()
    assert torch.isfinite(out.loss).all() and torch.isfinite(total)
    assert all(torch.isfinite(x.grad).all() for x in xs)


def _link_and_slope(loss, z):
    z = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    g = loss.fn("link")(z, 0.0)
    (slope,) = torch.autograd.grad(g.sum(), z)
    return g.detach(), slope


def test_rdpo_is_unbounded_below_and_keeps_pulling_at_large_margins():
    eps = 0.1
    g, slope = _link_and_slope(sl.objectives.rdpo(label_smoothing=eps), [10.0, 100.0, 1000.0])
    assert g[0] > g[1] > g[2]  # ever lower loss for ever larger margins ...
    torch.testing.assert_close(g[2], torch.tensor(-eps * 1000 / (1 - 2 * eps), dtype=torch.float64), rtol=1e-6,
                               atol=0)
    torch.testing.assert_close(slope[1:], torch.full((2,), -eps / (1 - 2 * eps), dtype=torch.float64))
    _, dpo_slope = _link_and_slope(sl.objectives.dpo(), [100.0, 1000.0])  # ... while DPO's pull vanishes
    assert dpo_slope.abs().max() < 1e-40


def test_bounded_losses_saturate_and_symmetric_ones_are_symmetric():
    z = torch.linspace(-50, 50, 201, dtype=torch.float64)
    for variant, total in (("sigmoid", 1.0), ("ramp", 1.0), ("unhinged", 2.0)):
        link = sl.objectives.sympo(variant=variant).fn("link")
        torch.testing.assert_close(link(z, 0.0) + link(-z, 0.0), torch.full_like(z, total))
    holder = sl.objectives.holder_dpo().fn("link")(z, 0.0)
    assert holder.min() >= -1 - 1e-12 and holder.max() <= 1e-12 and (holder.diff() <= 1e-15).all()
    _, slope = _link_and_slope(sl.objectives.holder_dpo(), [-40.0, 0.0, 40.0])
    assert abs(slope[0]) < 1e-30 and abs(slope[2]) < 1e-15 and slope[1] < 0  # redescending at both ends
    g, _ = _link_and_slope(sl.objectives.repo(eta=0.9), [-200.0, 200.0])
    torch.testing.assert_close(g, torch.tensor([math.log(9), 0.0], dtype=torch.float64))  # bounded in (0, c)


def test_ropo_slope_for_confidently_wrong_pairs_is_a_quarter_of_the_undecided_one():
    _, slope = _link_and_slope(sl.objectives.ropo(alpha=14), [-60.0, 0.0])
    torch.testing.assert_close(slope[0] / slope[1], torch.tensor(2 / (1 + 14 / 2), dtype=torch.float64))


# -- Dr. DPO's batch reduction ------------------------------------------------------------------------------

@pytest.mark.parametrize("beta_prime", [1.0, 0.25, 4.0])
def test_drdpo_with_one_pair_is_dpo_exactly(beta_prime):
    for seed in range(5):
        arrays, masks = ragged(seed=seed, batch=1)
        _, batch = as_batch(arrays, masks)
        dpo = sl.objectives.dpo()(batch).loss
        loss = sl.objectives.drdpo(beta_prime=beta_prime)
        assert torch.equal(loss.reduce(loss(batch).loss), dpo[0])


def test_drdpo_tends_to_dpo_for_large_beta_prime_and_to_the_smallest_loss_for_small():
    per_pair = torch.tensor([0.1, 0.7, 2.0, 5.0], dtype=torch.float64)
    big, small = sl.objectives.drdpo(beta_prime=1e6), sl.objectives.drdpo(beta_prime=1e-3)
    torch.testing.assert_close(big.reduce(per_pair), per_pair.mean(), rtol=1e-6, atol=0)
    torch.testing.assert_close(small.reduce(per_pair), torch.tensor(0.1 + 1e-3 * math.log(4), dtype=torch.float64))
    assert torch.isfinite(sl.objectives.drdpo(beta_prime=1e-3).reduce(torch.tensor([1e3, 2e3])))


def test_reduce_masks_pairs_and_reduces_each_member_separately():
    gen = torch.Generator().manual_seed(0)
    per_pair = (torch.rand(3, 5, generator=gen, dtype=torch.float64) * 4).requires_grad_(True)  # [P, B]
    mask = torch.tensor([[1, 1, 0, 1, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], dtype=torch.bool)
    for loss in (sl.objectives.dpo(), sl.objectives.drdpo(beta_prime=0.5)):
        out = loss.reduce(per_pair, mask)
        assert out.shape == (3,)
        torch.testing.assert_close(out[0], loss.reduce(per_pair[0, mask[0]]))
        torch.testing.assert_close(out[1], loss.reduce(per_pair[1]))
        assert out[2] == 0  # no pair counted
        (grad,) = torch.autograd.grad(out.sum(), per_pair)
        assert torch.isfinite(grad).all() and (grad[~mask] == 0).all()
    assert torch.autograd.gradcheck(lambda x: reduce_pairs(x, mask, how="logmeanexp", temperature=0.7), per_pair)


def test_drdpo_weights_pairs_by_the_softmax_of_their_negative_loss():
    per_pair = torch.tensor([0.2, 1.0, 3.0], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(sl.objectives.drdpo(beta_prime=0.5).reduce(per_pair), per_pair)
    torch.testing.assert_close(grad, torch.softmax(-per_pair.detach() / 0.5, dim=0))  # large loss: small weight


# -- knobs ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, message", [
    (lambda: sl.objectives.ropo(alpha=0), r"alpha=0: must be a finite number > 0"),
    (lambda: sl.objectives.holder_dpo(gamma=-1.0), r"gamma=-1.0: must be a finite number > 0"),
    (lambda: sl.objectives.holder_dpo(gamma=math.inf), r"gamma=inf: must be a finite number > 0"),
    (lambda: sl.objectives.sympo(variant="rampp"), r"variant='rampp': must be one of .*did you mean 'ramp'"),
    (lambda: sl.objectives.repo(eta=0.5), r"eta=0.5: must be a finite number in \(0.5, 1\) \(the probability"),
    (lambda: sl.objectives.repo(eta=1.0), r"eta=1.0: must be a finite number in \(0.5, 1\)"),
    (lambda: sl.objectives.drdpo(beta_prime=0), r"beta_prime=0: must be a finite number > 0 \(Dr. DPO's b'\)"),
    (lambda: sl.objectives.drdpo(beta=math.inf), r"beta=inf: must be a finite number > 0"),
    (lambda: MirrorLoss(reduction="lme"), r"reduction='lme': must be one of \['mean', 'logmeanexp'\]"),
    (lambda: MirrorLoss(temperature=-1.0), r"temperature=-1.0: must be a finite number > 0"),
])
def test_knobs_are_validated(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_knobs_reach_the_loss():
    assert sl.objectives.drdpo(beta_prime=0.3).temperature == 0.3
    assert sl.objectives.drdpo().reduction == "logmeanexp" and sl.objectives.dpo().reduction == "mean"
    assert sl.objectives.sympo(variant="unhinged").name == "sympo_unhinged"
    assert "log(4)" in sl.objectives.repo(eta=0.8).to_dict()["link"]  # c = log(eta / (1 - eta)), exact
    assert sl.objectives.ropo(alpha=1).to_dict()["link"] == "sigmoid(-z) + softplus(-z)"  # 4a/(1+a)^2 = 1
