"""Zoo losses against NumPy references written from TRL 1.16's formulas, and TRL's own ORPO code."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

import symloss as sl
from symloss.objectives import LOSSES, LogpBatch, MirrorLoss, get_loss

B, TW, TL = 6, 7, 5


def logsig(x):
    return -np.logaddexp(0.0, -x)


@pytest.fixture()
def batch():
    gen = torch.Generator().manual_seed(0)

    def logps(t):
        return -torch.rand(B, t, generator=gen, dtype=torch.float64) * 2 - 0.01

    w_mask = torch.ones(B, TW, dtype=torch.bool)
    w_mask[:3, 5:] = False  # ragged lengths
    l_mask = torch.ones(B, TL, dtype=torch.bool)
    l_mask[2:, 4:] = False
    chosen = torch.where(w_mask, logps(TW), torch.zeros(()))  # padding is 0 as in TRL
    return LogpBatch(chosen, logps(TL), w_mask, l_mask, logps(TW), logps(TL), progress=0.3)


def sums(batch):
    w, lm = batch.masks
    def s(x, m):
        return (x.numpy() * m.numpy()).sum(-1)
    n_w, n_l = w.numpy().sum(-1), lm.numpy().sum(-1)
    return (s(batch.chosen_logps, w), s(batch.rejected_logps, lm), s(batch.ref_chosen_logps, w),
            s(batch.ref_rejected_logps, lm), n_w, n_l)


def reference(name, batch, **kw):
    sw, sl_, swr, slr, n_w, n_l = sums(batch)
    delta = (sw - swr) - (sl_ - slr)
    beta = kw.get("beta", 0.1)
    eps = kw.get("label_smoothing", 0.1)
    if name == "ipo":
        return ((sw - swr) / n_w - (sl_ - slr) / n_l - 1 / (2 * beta)) ** 2
    if name == "hinge":
        return np.maximum(0.0, 1 - beta * delta)
    if name == "rdpo":
        return (-(1 - eps) * logsig(beta * delta) + eps * logsig(-beta * delta)) / (1 - 2 * eps)
    if name == "cdpo":
        return -(1 - eps) * logsig(beta * delta) - eps * logsig(-beta * delta)
    if name == "discopop":
        logits = beta * delta
        modulation = 1 / (1 + np.exp(-logits / 0.05))
        return -logsig(logits) * (1 - modulation) + np.exp(-logits) * modulation
    if name == "simpo":
        beta, gamma = 2.0, 0.5
        return -logsig(beta * (sw / n_w - sl_ / n_l) - gamma)
    if name == "orpo":
        mw, ml = sw / n_w, sl_ / n_l
        log_odds = (mw - ml) - (np.log1p(-np.exp(mw)) - np.log1p(-np.exp(ml)))
        return -0.1 * logsig(log_odds) - mw
    if name == "ta_mpo":
        return 0.3 * -logsig(0.1 * delta) + 0.7 * -sw
    z = beta * delta
    if name in ("dpo", "drdpo"):  # drdpo's per-pair term is DPO's; its batch reduction: test_objectives_robust
        return -logsig(z)
    return robust_reference(name, z, **kw)


def sigmoid_np(x):
    return np.exp(logsig(x))


def robust_reference(name, z, **kw):
    """The published per-pair formulas (issue 13's table), in NumPy, on the margin z = beta * Delta."""
    if name == "ropo":  # Liang et al. 2024: 4a/(1+a)^2 * (-log sigma(z)) + 4a^2/(1+a)^2 * sigma(-z)
        a = kw.get("alpha", 14.0)
        return 4 * a / (1 + a) ** 2 * -logsig(z) + 4 * a**2 / (1 + a) ** 2 * sigmoid_np(-z)
    if name == "holder_dpo":  # Fujisawa et al. 2025: -(1+g) p^g + g p^(1+g), p = sigma(z)
        g, p = kw.get("gamma", 2.0), sigmoid_np(z)
        return -(1 + g) * p**g + g * p ** (1 + g)
    if name == "sympo":  # Nishimori et al. 2025, the sigmoid loss with label 1: 1 / (1 + e^z)
        variant = kw.get("variant", "sigmoid")
        if variant == "ramp":
            return np.clip(0.5 - 0.5 * z, 0.0, 1.0)
        if variant == "unhinged":
            return 1 - z
        return 1 / (1 + np.exp(z))
    if name == "repo":  # the closed-form link whose gradient is the detached EM objective's (see _robust.repo)
        eta = kw.get("eta", 0.9)
        c = np.log(eta / (1 - eta))
        return -logsig(z) + logsig(z + c)
    raise KeyError(name)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_zoo_matches_numpy_reference(name, batch):
    got = get_loss(name)(batch).loss.numpy()
    np.testing.assert_allclose(got, reference(name, batch), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("name, kw", [("dpo", {"beta": 0.5}), ("rdpo", {"label_smoothing": 0.3}),
                                      ("cdpo", {"beta": 0.2, "label_smoothing": 0.25}), ("ipo", {"beta": 0.7}),
                                      ("ropo", {"alpha": 3.0, "beta": 0.3}), ("holder_dpo", {"gamma": 0.5}),
                                      ("holder_dpo", {"gamma": 3.7, "beta": 0.4}), ("sympo", {"variant": "ramp"}),
                                      ("sympo", {"variant": "unhinged", "beta": 0.2}), ("repo", {"eta": 0.6}),
                                      ("repo", {"eta": 0.99, "beta": 0.5}), ("drdpo", {"beta": 0.3})])
def test_zoo_hyperparameters(name, kw, batch):
    np.testing.assert_allclose(get_loss(name, **kw)(batch).loss.numpy(), reference(name, batch, **kw), rtol=1e-6)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_orpo_matches_trl_odds_ratio_loss_plus_nll(batch):
    from trl.experimental.orpo import ORPOTrainer

    sw, sl_, _, _, n_w, n_l = sums(batch)
    mean_w, mean_l = torch.tensor(sw / n_w), torch.tensor(sl_ / n_l)
    fake = SimpleNamespace(beta=0.1, accelerator=SimpleNamespace(device="cpu"))
    losses, *_ = ORPOTrainer.odds_ratio_loss(fake, mean_w, mean_l)
    trl_per_pair = -mean_w - losses.double()  # TRL: loss = nll - losses.mean(); nll per pair = -mean logp
    ours = sl.objectives.orpo(lam=0.1)(batch).loss
    torch.testing.assert_close(ours, trl_per_pair, rtol=1e-6, atol=1e-6)


def test_token_aggregation_applies_the_map_per_token(batch):
    loss = MirrorLoss("u - log(1 - exp(u))", "softplus(-z)", beta=0.5, aggregation="token")
    w, lm = (m.numpy() for m in batch.masks)

    def mapped(x, m):
        x = np.where(m, x.numpy(), -1.0)  # padding never reaches the map
        return ((x - np.log1p(-np.exp(x))) * m).sum(-1)

    z = 0.5 * ((mapped(batch.chosen_logps, w) - mapped(batch.ref_chosen_logps, w))
               - (mapped(batch.rejected_logps, lm) - mapped(batch.ref_rejected_logps, lm)))
    np.testing.assert_allclose(loss(batch).loss.numpy(), np.logaddexp(0, -z), rtol=1e-9)


def test_diagnostics(batch):
    out = sl.objectives.dpo(beta=0.1)(batch)
    sw, sl_, swr, slr, *_ = sums(batch)
    np.testing.assert_allclose(out.chosen_rewards.numpy(), 0.1 * (sw - swr))
    np.testing.assert_allclose(out.margin.numpy(), 0.1 * ((sw - swr) - (sl_ - slr)))
    np.testing.assert_array_equal(out.accuracy.numpy(), (0.1 * (sw - swr) > 0.1 * (sl_ - slr)).astype(float))


def test_population_shaped_batches_match_flat_ones():
    gen = torch.Generator().manual_seed(4)
    shape = (3, 2, 5)
    logps = [-torch.rand(*shape, 6, generator=gen, dtype=torch.float64) for _ in range(4)]
    big = LogpBatch(logps[0], logps[1], ref_chosen_logps=logps[2], ref_rejected_logps=logps[3])
    flat = LogpBatch(*(x.reshape(-1, 6) for x in logps[:2]), ref_chosen_logps=logps[2].reshape(-1, 6),
                     ref_rejected_logps=logps[3].reshape(-1, 6))
    loss = sl.objectives.ipo()
    torch.testing.assert_close(loss(big).loss.reshape(-1), loss(flat).loss)


def test_round_trip_through_dict_for_every_zoo_member():
    for name, make in LOSSES.items():
        loss = make()
        back = MirrorLoss.from_dict(loss.to_dict())
        assert back == loss, name
        assert "m(u" in loss.latex() and "\\mathcal{L}" in loss.latex()
