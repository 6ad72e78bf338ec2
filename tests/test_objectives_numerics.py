"""Gradients and extreme inputs for every zoo member, and bad input."""

import pytest
import torch

import symloss as sl
from symloss.objectives import LOSSES, LogpBatch, MirrorLoss, get_loss


def make_batch(scale, t_len=4, batch=3, seed=0, requires_grad=False):
    gen = torch.Generator().manual_seed(seed)
    xs = [-(torch.rand(batch, t_len, generator=gen, dtype=torch.float64) * 0.9 + 0.1) * scale for _ in range(4)]
    for x in xs:
        x.requires_grad_(requires_grad)
    return xs


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradcheck(name):
    loss = get_loss(name)
    xs = make_batch(0.5, requires_grad=True)

    def f(cw, rl, rcw, rrl):
        return loss(LogpBatch(cw, rl, ref_chosen_logps=rcw, ref_rejected_logps=rrl, progress=0.4)).loss

    assert torch.autograd.gradcheck(f, tuple(xs), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_for_long_sequences_and_confident_tokens(name, dtype):
    loss = get_loss(name)
    # summed log-probs down to -1e4 (one 'token' per response) ...
    cw, rl, rcw, rrl = (x.to(dtype).detach().requires_grad_(True) for x in make_batch(1e4, t_len=1, batch=64))
    out = loss(LogpBatch(cw, rl, ref_chosen_logps=rcw, ref_rejected_logps=rrl))
    out.loss.sum().backward()
    assert torch.isfinite(out.loss).all()
    assert all(torch.isfinite(x.grad).all() for x in (cw, rl))
    # ... and per-token log-probs down to -50, plus tokens with probability ~1
    xs = make_batch(50, t_len=200, batch=8, seed=1)
    xs[0][:, :100] = -1e-9
    cw, rl, rcw, rrl = (x.to(dtype).detach().requires_grad_(True) for x in xs)
    out = loss(LogpBatch(cw, rl, ref_chosen_logps=rcw, ref_rejected_logps=rrl, progress=1.0))
    out.loss.sum().backward()
    assert torch.isfinite(out.loss).all()
    assert torch.isfinite(cw.grad).all() and torch.isfinite(rl.grad).all()


def good():
    return make_batch(1.0)


@pytest.mark.parametrize("mutate, field", [
    (lambda xs: xs.__setitem__(1, xs[1][:, :3]) or xs, None),
    (lambda xs: xs.__setitem__(0, torch.full_like(xs[0], float("nan"))) or xs, "chosen_logps"),
    (lambda xs: xs.__setitem__(1, xs[1].abs()) or xs, "rejected_logps"),
    (lambda xs: xs.__setitem__(2, xs[2][:2]) or xs, "ref_chosen_logps"),
])
def test_bad_batches_raise_value_error_naming_the_field(mutate, field):
    cw, rl, rcw, rrl = mutate(good())
    if field is None:  # chosen/rejected of different lengths are fine: padding handled by masks
        LogpBatch(cw, rl, ref_chosen_logps=rcw, ref_rejected_logps=rrl[:, :3])
        return
    with pytest.raises(ValueError, match=field):
        batch = LogpBatch(cw, rl, ref_chosen_logps=rcw, ref_rejected_logps=rrl)
        sl.objectives.dpo()(batch)


def test_other_bad_inputs():
    cw, rl, rcw, rrl = good()
    with pytest.raises(ValueError, match="rejected_logps: batch shape"):
        LogpBatch(cw, rl[:2])
    with pytest.raises(ValueError, match="chosen_mask"):
        LogpBatch(cw, rl, chosen_mask=torch.ones(3, 9))
    with pytest.raises(ValueError, match="give both or neither"):
        LogpBatch(cw, rl, ref_chosen_logps=rcw)
    with pytest.raises(ValueError, match="progress"):
        sl.objectives.ta_mpo()(LogpBatch(cw, rl, ref_chosen_logps=rcw, ref_rejected_logps=rrl, progress=1.5))
    with pytest.raises(ValueError, match="needs reference log-probs"):
        sl.objectives.dpo()(LogpBatch(cw, rl))
    with pytest.raises(ValueError, match="mirror: unknown name 'x'"):
        MirrorLoss(mirror="x + u")
    with pytest.raises(ValueError, match="link: unknown name 'u'"):
        MirrorLoss(link="softplus(-u)")
    with pytest.raises(ValueError, match="beta=-1"):
        MirrorLoss(beta=-1)
    with pytest.raises(ValueError, match="did you mean 'mean'"):
        MirrorLoss(aggregation="meen")
    with pytest.raises(ValueError, match="did you mean 'dpo'"):
        get_loss("dpoo")
    with pytest.raises(ValueError, match="label_smoothing=0.5"):
        sl.objectives.rdpo(label_smoothing=0.5)
    with pytest.raises(ValueError, match="unknown key"):
        MirrorLoss.from_dict({"mirror": "u", "evil": "__import__('os')"})
    with pytest.raises(ValueError, match="unexpected character"):
        MirrorLoss.from_dict({"mirror": "__import__('os').system('echo hi')"})


def test_reference_free_loss_ignores_reference():
    cw, rl, rcw, rrl = good()
    loss = sl.objectives.simpo()
    a = loss(LogpBatch(cw, rl)).loss
    b = loss(LogpBatch(cw, rl, ref_chosen_logps=rcw, ref_rejected_logps=rrl)).loss
    torch.testing.assert_close(a, b)
