"""The baseline zoo: well-known preference losses written as MPO slots (TRL 1.16 formulas).

Notation: z is the margin beta * (Delta log-ratio) unless a loss says otherwise; s-bar is a
length-normalised log-prob. Each constructor returns a :class:`MirrorLoss`; the noise-robust losses of
2024-2026 are in ``_robust``, the registry of all of them in ``_registry``.
"""

from __future__ import annotations

import sympy as sp

from symloss.expr import SYMBOLS, logsigmoid, relu, sigmoid, softplus
from symloss.objectives._mirror import MirrorLoss
from symloss.validation import check_range

_Z = SYMBOLS["z"]


def _exact(x: float) -> sp.Rational:
    """The decimal a user typed, as an exact rational (0.1 -> 1/10), so formulas stay readable."""
    return sp.Rational(repr(float(x)))


def _check_beta(beta: float) -> float:
    return float(check_range("beta", beta, lo=0, lo_open=True, why="the scale of the margin"))


def _check_smoothing(label_smoothing: float, upper: float, inclusive: bool) -> float:
    return float(check_range("label_smoothing", label_smoothing, lo=0, hi=upper, hi_open=not inclusive,
                             why="the assumed fraction of flipped labels"))


def dpo(beta: float = 0.1) -> MirrorLoss:
    """DPO (Rafailov et al. 2023): m(u) = u, g(z) = softplus(-z) = -log sigma(z)."""
    return MirrorLoss("u", "softplus(-z)", beta=_check_beta(beta), name="dpo")


def cdpo(beta: float = 0.1, label_smoothing: float = 0.1) -> MirrorLoss:
    """Conservative DPO (Mitchell 2023): g(z) = (1 - eps) softplus(-z) + eps softplus(z), eps in [0, 0.5]."""
    eps = _exact(_check_smoothing(label_smoothing, 0.5, inclusive=True))
    link = (1 - eps) * softplus(-_Z) + eps * softplus(_Z)
    return MirrorLoss("u", link, beta=_check_beta(beta), name="cdpo")


def rdpo(beta: float = 0.1, label_smoothing: float = 0.1) -> MirrorLoss:
    """Robust DPO (Chowdhury et al. 2024), TRL ``robust``:
    g(z) = [(1 - eps) softplus(-z) - eps softplus(z)] / (1 - 2 eps), eps in [0, 0.5).

    Unbounded below, as in TRL (kept on purpose, for parity): for z -> +inf, g(z) ~ -eps z / (1 - 2 eps)
    and g'(z) -> -eps / (1 - 2 eps) < 0, so the loss keeps rewarding ever larger margins, on clean and
    flipped pairs alike (a pair never stops pulling); for z -> -inf, g(z) ~ -(1 - eps) z / (1 - 2 eps).
    g is the unbiased estimate of softplus(-z) under labels flipped with probability eps; its minimum over
    a batch is -inf, so compare rdpo runs by return or accuracy, never by loss value."""
    eps = _exact(_check_smoothing(label_smoothing, 0.5, inclusive=False))
    link = ((1 - eps) * softplus(-_Z) - eps * softplus(_Z)) / (1 - 2 * eps)
    return MirrorLoss("u", link, beta=_check_beta(beta), name="rdpo")


def ipo(beta: float = 0.1) -> MirrorLoss:
    """IPO (Azar et al. 2023), TRL ``ipo``: length-normalised log-ratios, g(z) = (z - 1/2)^2 / beta^2,
    i.e. (Delta - 1/(2 beta))^2 on the unscaled margin Delta = z / beta."""
    beta = _check_beta(beta)
    link = (_Z - sp.Rational(1, 2)) ** 2 / _exact(beta) ** 2
    return MirrorLoss("u", link, beta=beta, aggregation="mean", name="ipo")


def hinge(beta: float = 0.1) -> MirrorLoss:
    """SLiC hinge (Zhao et al. 2023), TRL ``hinge``: g(z) = max(0, 1 - z)."""
    return MirrorLoss("u", relu(1 - _Z), beta=_check_beta(beta), name="hinge")


def discopop(beta: float = 0.1, tau: float = 0.05) -> MirrorLoss:
    """DiscoPOP / LRML (Chris Lu et al. 2024), TRL ``discopop``:
    g(z) = softplus(-z) (1 - sigma(z / tau)) + e^-z sigma(z / tau), written as
    softplus(-z) sigma(-z / tau) + exp(-z + log sigma(z / tau)) so it never overflows."""
    check_range("tau", tau, lo=0, lo_open=True, why="the modulation temperature")
    scaled = _Z / _exact(tau)
    link = softplus(-_Z) * sigmoid(-scaled) + sp.exp(-_Z + logsigmoid(scaled))
    return MirrorLoss("u", link, beta=_check_beta(beta), name="discopop")


def simpo(beta: float = 2.0, gamma: float = 0.5) -> MirrorLoss:
    """SimPO (Meng et al. 2024): reference-free, length-normalised, z = beta (s-bar_w - s-bar_l),
    g(z) = softplus(gamma - z) = -log sigma(z - gamma)."""
    link = softplus(_exact(check_range("gamma", gamma, why="the target margin")) - _Z)
    return MirrorLoss("u", link, beta=_check_beta(beta), aggregation="mean", reference_free=True, name="simpo")


def orpo(lam: float = 0.1) -> MirrorLoss:
    """ORPO (Hong et al. 2024): reference-free log-odds map on length-normalised log-probs,
    m(u) = u - log(1 - e^u), beta = 1, loss = lam * softplus(-z) + (-u_w)  (NLL of the chosen response).

    The imitation term is per pair: -u_w, the mean token log-prob of each chosen response, averaged over
    pairs. TRL's ORPOTrainer averages the cross-entropy over all chosen tokens of the batch instead; the
    two agree when chosen responses have equal lengths, and the odds-ratio term is identical."""
    check_range("lam", lam, lo=0, lo_open=True, why="weight of the odds-ratio term, lambda in ORPO")
    return MirrorLoss("u - log(1 - exp(u))", "softplus(-z)", "-u_w", beta=1.0, w_pref=float(lam),
                      w_imit=1.0, aggregation="mean", reference_free=True, name="orpo")


def ta_mpo(base: MirrorLoss | None = None, *, imitation: str = "-u_w") -> MirrorLoss:
    """Temporally-aware MPO: imitation early, preference late.
    loss = t * g(z) + (1 - t) * psi(u_w), with t = training progress in [0, 1]; ``base`` defaults to DPO."""
    base = dpo() if base is None else base
    return base.replace(imitation=imitation, w_pref="t", w_imit="1 - t", name=f"ta_{base.name}")
