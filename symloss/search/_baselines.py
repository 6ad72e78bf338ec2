"""Tuned baselines trained inside a search: the zoo's losses, each on a small grid of its hyperparameters.

A discovered loss is only a result if it beats the best *tuned* known loss on the same data, seeds and
protocol. :data:`BASELINE_GRIDS` names the grids a search trains beside its candidates (``SearchConfig.baselines``):

- ``small`` (the default): the losses that led some Hopper dataset under the final protocol (paper_repro/RESULTS.md,
  "Zoo on Hopper noisy" and "Hopper clean / noisy / mixed", 2026-12-01) and two robust losses at the beta that suited
  DPO there: DPO beta 0.1 / 1, hinge beta 1 (best on ``noisy`` with DPO beta 1), rDPO eps 0.1 (best on ``mixed``),
  ROPO and Hölder-DPO at beta 1 (their published beta 0.1 was among the worst on ``noisy``).
- ``full``: every zoo loss with a grid over its knobs (DPO's beta, cDPO / rDPO's epsilon, IPO's and hinge's beta,
  ORPO's lambda, ROPO's alpha, Hölder's gamma, SymPO's beta, RE-PO's eta, Dr. DPO's beta').

Each baseline is a :class:`Baseline`: a label such as ``"dpo(beta=1)"``, the zoo name and arguments, the loss, and its
cache key ``baseline:<sha1 of the loss>`` (a search's cache holds baselines and candidates side by side).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from symloss.objectives import MirrorLoss, get_loss
from symloss.validation import check_choice

_GRID = tuple[tuple[str, dict[str, Any]], ...]

BASELINE_GRIDS: dict[str, _GRID] = {
    "none": (),
    "small": (
        ("dpo", {"beta": 0.1}), ("dpo", {"beta": 1.0}), ("hinge", {"beta": 1.0}),
        ("rdpo", {"beta": 0.1, "label_smoothing": 0.1}), ("ropo", {"beta": 1.0}), ("holder_dpo", {"beta": 1.0}),
    ),
    "full": (
        *(("dpo", {"beta": b}) for b in (0.03, 0.1, 0.3, 1.0, 3.0)),
        *(("cdpo", {"beta": 0.1, "label_smoothing": e}) for e in (0.1, 0.3)),
        *(("rdpo", {"beta": 0.1, "label_smoothing": e}) for e in (0.1, 0.3)),
        *(("ipo", {"beta": b}) for b in (0.1, 1.0)),
        *(("hinge", {"beta": b}) for b in (0.1, 1.0)),
        ("simpo", {}), ("discopop", {}),
        *(("orpo", {"lam": lam}) for lam in (0.1, 1.0)),
        *(("ropo", {"beta": b, "alpha": a}) for b in (0.1, 1.0) for a in (4.0, 14.0)),
        *(("holder_dpo", {"beta": b, "gamma": g}) for b in (0.1, 1.0) for g in (1.0, 2.0)),
        *(("sympo", {"beta": b}) for b in (0.1, 1.0)),
        *(("repo", {"beta": 0.1, "eta": e}) for e in (0.8, 0.9)),
        *(("drdpo", {"beta": 0.1, "beta_prime": b}) for b in (0.5, 1.0)),
    ),
}
"""Grid name -> (zoo name, keyword arguments) of each baseline."""


@dataclass(frozen=True)
class Baseline:
    """One tuned baseline: ``label`` (``"dpo(beta=1)"``), zoo ``name`` and ``kwargs``, the ``loss`` and its ``key``."""

    label: str
    name: str
    kwargs: dict[str, Any]
    loss: MirrorLoss

    @property
    def key(self) -> str:
        return baseline_key(self.loss)


def baseline_key(loss: MirrorLoss) -> str:
    """``baseline:<first 16 hex digits of sha1(the loss's JSON)>``: equal losses, equal keys."""
    text = json.dumps(loss.to_dict(), sort_keys=True, default=str)
    return "baseline:" + hashlib.sha1(text.encode()).hexdigest()[:16]


def label_of(name: str, kwargs: dict[str, Any]) -> str:
    """``dpo(beta=1)``: the zoo name with its arguments (numbers in their shortest form)."""
    return name + ("(" + ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                   for k, v in kwargs.items()) + ")" if kwargs else "")


def baselines(grid: str) -> list[Baseline]:
    """The baselines of ``BASELINE_GRIDS[grid]``, each loss named by its label."""
    check_choice("baselines", grid, BASELINE_GRIDS)
    out = []
    for name, kwargs in BASELINE_GRIDS[grid]:
        label = label_of(name, kwargs)
        out.append(Baseline(label, name, dict(kwargs), get_loss(name, **kwargs).replace(name=label)))
    return out


__all__ = ["BASELINE_GRIDS", "Baseline", "baseline_key", "baselines", "label_of"]
