"""The noise-robust preference losses of 2024-2026 as MPO slots: ROPO, Hölder-DPO, SymPO, RE-PO, Dr. DPO.

Each is DPO's template (m(u) = u, summed log-probs, a reference) with another link g or batch reduction;
z = beta * Delta is the DPO margin, Delta = [s_w - s_w^ref] - [s_l - s_l^ref]. They are the bar a
discovered loss must clear on noisy labels (PAPER.md, "The bar a discovered loss must clear").
"""

from __future__ import annotations

from typing import Literal

import sympy as sp

from symloss.expr import SYMBOLS, logsigmoid, sigmoid, softplus
from symloss.objectives._mirror import MirrorLoss
from symloss.objectives._zoo import _check_beta, _exact
from symloss.validation import check_choice, check_range

_Z = SYMBOLS["z"]

SymPOVariant = Literal["sigmoid", "ramp", "unhinged"]
SYMPO_VARIANTS: tuple[str, ...] = ("sigmoid", "ramp", "unhinged")


def ropo(beta: float = 0.1, alpha: float = 14.0) -> MirrorLoss:
    """ROPO's robust loss (Liang et al., ICML 2025, arXiv 2404.04102), the loss term only:

        g(z) = 4a / (1 + a)^2 * softplus(-z) + 4a^2 / (1 + a)^2 * sigmoid(-z),      a = alpha > 0

    DPO's loss plus a times the bounded sigmoid loss, both scaled by 4a / (1 + a)^2 (1 at a = 1). Its slope
    g'(z) = -4a / (1 + a)^2 * sigmoid(-z) * (1 + a sigmoid(z)) is largest near z = 0 and falls to
    4a / (1 + a)^2 for confidently "wrong" pairs (z -> -inf): with a = 14 a pair the model strongly
    disagrees with (a likely flipped label) pulls 2 / (1 + a/2) = 1/4 as hard as an undecided one.

    Source and choices: the weights and the default a = 14 as in the public implementation of ROPO's loss
    in the SymPO code (github.com/nissymori/SymPO, ``ROPOTrainer``: ``4 alpha / (alpha + 1)^2`` on
    ``-logsigmoid(z)`` plus ``4 alpha^2 / (alpha + 1)^2`` on ``sigmoid(-z)``); ROPO's sample filtering and
    robustness-guided rejection sampling act on the data, not the loss, and are not included. beta = 0.1.
    """
    a = _exact(check_range("alpha", alpha, lo=0, lo_open=True, why="ROPO's weight of the sigmoid term"))
    link = 4 * a / (1 + a) ** 2 * softplus(-_Z) + 4 * a**2 / (1 + a) ** 2 * sigmoid(-_Z)
    return MirrorLoss("u", link, beta=_check_beta(beta), name="ropo")


def holder_dpo(beta: float = 0.1, gamma: float = 2.0) -> MirrorLoss:
    """Hölder-DPO (Fujisawa, Adachi, Osborne, NeurIPS 2025, arXiv 2505.17859):

        g(z) = -(1 + gamma) * sigmoid(z)^gamma + gamma * sigmoid(z)^(1 + gamma),      gamma > 0

    With p = sigmoid(z), dg/dp = gamma (1 + gamma) p^(gamma - 1) (p - 1) <= 0: g falls from 0 (p = 0) to -1
    (p = 1), bounded, and its slope in z vanishes at both ends (redescending: a pair the model is sure is
    wrong stops pulling). Written as exp(gamma * logsigmoid(z)) so that neither the value nor the gradient
    is 0 * inf for gamma < 1 or margins of -1e3 in float32.

    Source and choices: the per-pair form of the authors' public code (github.com/ma921/HolderDPO,
    ``p = sigmoid(beta * g_theta)``, ``loss = -(1 + gamma) p^gamma + gamma p^(gamma + 1)``, each averaged
    over the batch, which equals the mean of the per-pair form). gamma = 2 is symloss's default (the paper
    treats gamma as a hyperparameter); beta = 0.1.
    """
    g = _exact(check_range("gamma", gamma, lo=0, lo_open=True, why="Hölder-DPO's power"))
    link = -(1 + g) * sp.exp(g * logsigmoid(_Z)) + g * sp.exp((1 + g) * logsigmoid(_Z))
    return MirrorLoss("u", link, beta=_check_beta(beta), name="holder_dpo")


def sympo(beta: float = 0.1, variant: SymPOVariant = "sigmoid") -> MirrorLoss:
    """SymPO (Nishimori, Zhang, Lodkaew, Sugiyama, TMLR 2026, arXiv 2505.24709): a symmetric link,
    g(z) + g(-z) = constant, which makes the learned reward rank-preserving under symmetric label noise.

        sigmoid:   g(z) = sigmoid(-z)                       (the paper's default; g(z) + g(-z) = 1)
        ramp:      g(z) = min(1, max(0, (1 - z) / 2))        (symmetric ramp;      g(z) + g(-z) = 1)
        unhinged:  g(z) = 1 - z                             (unhinged;            g(z) + g(-z) = 2)

    Source and choices: the losses of the authors' code (github.com/nissymori/SymPO: ``sigmoid_loss``,
    ``symmetric_ramp_loss``, ``unhinged_loss`` with label 1, on logits z = beta * Delta; default
    ``loss_type: sigmoid``, beta = 0.1, no clipping). Their plain ``ramp_loss`` (min(1, max(0, 1 - z))) is
    not symmetric and is not offered. ``unhinged`` is unbounded below, like rDPO: it rewards ever larger
    margins at a constant rate.
    """
    variant = check_choice("variant", variant, SYMPO_VARIANTS)
    links = {"sigmoid": sigmoid(-_Z), "ramp": sp.Min(1, sp.Max(0, (1 - _Z) / 2)), "unhinged": 1 - _Z}
    name = "sympo" if variant == "sigmoid" else f"sympo_{variant}"
    return MirrorLoss("u", links[variant], beta=_check_beta(beta), name=name)


def repo(beta: float = 0.1, eta: float = 0.9) -> MirrorLoss:
    """RE-PO / RPO (Robust Preference Optimization, ICLR 2026) with its label-correctness rate eta held fixed.

    RPO's EM step weights each pair by the posterior w that its label is correct, given that a label is
    correct with probability eta and the model's Bradley-Terry preference sigma(z):

        w = eta sigmoid(z) / (eta sigmoid(z) + (1 - eta) sigmoid(-z))
          = sigmoid(z + c),        c = log(eta / (1 - eta))          (sigmoid(z) / sigmoid(-z) = e^z)

    and minimises the per-pair loss  L(z) = -[w log sigmoid(z) + (1 - w) log sigmoid(-z)]  with w held fixed
    (detached: the E-step's weight is not differentiated). Its gradient at the current z is

        dL/dz = -[w sigmoid(-z) - (1 - w) sigmoid(z)] = sigmoid(z) - w = sigmoid(z) - sigmoid(z + c).

    symloss's grammar has no stop-gradient, so the loss is written as the closed-form link with exactly
    that gradient at every z (integrate: d softplus(x)/dx = sigmoid(x)):

        g(z) = softplus(-z) - softplus(-z - c) = -log sigmoid(z) + log sigmoid(z + c)

    (the additive constant chosen so that g(+inf) = 0, g(-inf) = c). Training, which only sees gradients,
    is identical to the detached EM objective; the loss *value* g(z) differs from L(z) (L is not a function
    of z alone once w is frozen). g is decreasing (g' = sigmoid(z) - sigmoid(z + c) < 0 for eta > 1/2) and
    bounded in (0, c): a pair with z << -c, likely mislabelled, gets a vanishing gradient.

    Choices: eta is fixed (RPO estimates it per annotator by EM; a dataset of one annotator with a known
    flip rate r has eta = 1 - r), default 0.9, and restricted to (0.5, 1): eta = 1/2 makes g constant
    (nothing trains), eta < 1/2 reverses the preference, and eta -> 1 is DPO (c -> inf). beta = 0.1.
    """
    e = _exact(check_range("eta", eta, lo=0.5, hi=1, lo_open=True, hi_open=True,
                           why="the probability that a label is correct"))
    c = sp.log(e / (1 - e))
    link = softplus(-_Z) - softplus(-_Z - c)
    return MirrorLoss("u", link, beta=_check_beta(beta), name="repo")


def drdpo(beta: float = 0.1, beta_prime: float = 1.0) -> MirrorLoss:
    """Dr. DPO (Wu et al., ICLR 2025, arXiv 2407.07880): DPO's per-pair loss l_i = softplus(-z_i) with the
    distributionally robust batch reduction

        L = -b' log( (1/B) sum_i exp(-l_i / b') ),        b' = beta_prime > 0

    (``reduction="logmeanexp"``, ``temperature=b'``; see :meth:`MirrorLoss.reduce`). Pair i's gradient is
    weighted by B softmax_i(-l_i / b'): pairs with a large loss (likely flipped) count less; b' -> inf
    gives DPO, and with one pair L = l_1 exactly. The reduction runs over the pairs one trainer step sees:
    each member's minibatch in the population trainer, and each micro-batch (per device) in
    MirrorDPOTrainer, whose Trainer then averages the micro-batch gradients under gradient accumulation.

    Source: the authors' code (github.com/junkangwu/Dr_DPO): ``-mode_weight * log(mean(exp(-losses /
    mode_weight)))`` over the batch's DPO losses, ``mode_weight`` = b' = 1.0 in its examples; beta = 0.1.
    symloss computes it with logsumexp, finite for losses up to 1e3 and beyond.
    """
    temperature = check_range("beta_prime", beta_prime, lo=0, lo_open=True, why="Dr. DPO's b'")
    return MirrorLoss("u", "softplus(-z)", beta=_check_beta(beta), reduction="logmeanexp",
                      temperature=temperature, name="drdpo")
