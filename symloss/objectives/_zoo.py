"""The baseline zoo: well-known preference losses written as MPO slots (TRL 1.16 formulas).

Notation: z is the margin beta * (Delta log-ratio) unless a loss says otherwise; s-bar is a
length-normalised log-prob. Each constructor returns a :class:`MirrorLoss`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

import sympy as sp

from symloss.expr import SYMBOLS, logsigmoid, relu, sigmoid, softplus
from symloss.objectives._mirror import MirrorLoss

LossFn = Callable[..., MirrorLoss]

_Z = SYMBOLS["z"]


def _exact(x: float) -> sp.Rational:
    """The decimal a user typed, as an exact rational (0.1 -> 1/10), so formulas stay readable."""
    return sp.Rational(repr(float(x)))


def _check_beta(beta: float) -> float:
    if not isinstance(beta, int | float) or isinstance(beta, bool) or not beta > 0:
        raise ValueError(f"beta={beta!r}: must be a number > 0")
    return float(beta)


def _check_smoothing(label_smoothing: float, upper: float, inclusive: bool) -> float:
    ok = 0 <= label_smoothing <= upper if inclusive else 0 <= label_smoothing < upper
    if not ok:
        bracket = "]" if inclusive else ")"
        raise ValueError(f"label_smoothing={label_smoothing!r}: must lie in [0, {upper}{bracket}")
    return float(label_smoothing)


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
    g(z) = [(1 - eps) softplus(-z) - eps softplus(z)] / (1 - 2 eps), eps in [0, 0.5)."""
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
    if not tau > 0:
        raise ValueError(f"tau={tau!r}: must be > 0 (the modulation temperature)")
    scaled = _Z / _exact(tau)
    link = softplus(-_Z) * sigmoid(-scaled) + sp.exp(-_Z + logsigmoid(scaled))
    return MirrorLoss("u", link, beta=_check_beta(beta), name="discopop")


def simpo(beta: float = 2.0, gamma: float = 0.5) -> MirrorLoss:
    """SimPO (Meng et al. 2024): reference-free, length-normalised, z = beta (s-bar_w - s-bar_l),
    g(z) = softplus(gamma - z) = -log sigma(z - gamma)."""
    link = softplus(_exact(gamma) - _Z)
    return MirrorLoss("u", link, beta=_check_beta(beta), aggregation="mean", reference_free=True, name="simpo")


def orpo(lam: float = 0.1) -> MirrorLoss:
    """ORPO (Hong et al. 2024): reference-free log-odds map on length-normalised log-probs,
    m(u) = u - log(1 - e^u), beta = 1, loss = lam * softplus(-z) + (-u_w)  (NLL of the chosen response).

    The imitation term is per pair: -u_w, the mean token log-prob of each chosen response, averaged over
    pairs. TRL's ORPOTrainer averages the cross-entropy over all chosen tokens of the batch instead; the
    two agree when chosen responses have equal lengths, and the odds-ratio term is identical."""
    if not lam > 0:
        raise ValueError(f"lam={lam!r}: must be > 0 (weight of the odds-ratio term, lambda in ORPO)")
    return MirrorLoss("u - log(1 - exp(u))", "softplus(-z)", "-u_w", beta=1.0, w_pref=float(lam),
                      w_imit=1.0, aggregation="mean", reference_free=True, name="orpo")


def ta_mpo(base: MirrorLoss | None = None, *, imitation: str = "-u_w") -> MirrorLoss:
    """Temporally-aware MPO: imitation early, preference late.
    loss = t * g(z) + (1 - t) * psi(u_w), with t = training progress in [0, 1]; ``base`` defaults to DPO."""
    base = dpo() if base is None else base
    return base.replace(imitation=imitation, w_pref="t", w_imit="1 - t", name=f"ta_{base.name}")


LOSSES: dict[str, LossFn] = {
    "dpo": dpo, "cdpo": cdpo, "rdpo": rdpo, "ipo": ipo, "hinge": hinge, "discopop": discopop,
    "simpo": simpo, "orpo": orpo, "ta_mpo": ta_mpo,
}
"""Name -> constructor of each zoo loss."""


def get_loss(name: str, **kwargs: float) -> MirrorLoss:
    """Build a zoo loss by name, e.g. ``get_loss("dpo", beta=0.1)``; unknown names get a suggestion."""
    if name not in LOSSES:
        close = difflib.get_close_matches(name, LOSSES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"loss={name!r}: unknown; the zoo has {sorted(LOSSES)}{hint}")
    return LOSSES[name](**kwargs)
