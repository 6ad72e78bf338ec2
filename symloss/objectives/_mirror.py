"""The Mirror Preference Optimization (MPO) loss template (Alfano et al., arXiv 2411.06568; PAPER.md).

With u = log pi(y) aggregated over the response's tokens and m the mirror map,

    z    = beta * ( [m(u_w) - m(u_w_ref)] - [m(u_l) - m(u_l_ref)] )          (margin)
    loss = w_pref(t) * g(z, t) + w_imit(t) * psi(u_w, t)                       (per pair)

DPO is m(u) = u, g(z) = softplus(-z); ORPO is the reference-free log-odds map m(u) = u - log(1 - e^u) on
length-normalised log-probs with psi(u_w) = -u_w. Reference-free losses drop the m(u_ref) terms.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

import sympy as sp
import torch

from symloss.expr import (
    CompiledExpr,
    FormulaError,
    compile_expr,
    parse_formula,
    stabilise,
    to_formula,
    to_latex,
    to_python,
)
from symloss.objectives._batch import AGGREGATIONS, Aggregation, LogpBatch, LossOutput, aggregate

FORMAT = "symloss.mirror_loss/1"

SLOT_SPECS: dict[str, tuple[str, ...]] = {
    "mirror": ("u", "t"),
    "link": ("z", "t"),
    "imitation": ("u_w", "t"),
    "w_pref": ("t",),
    "w_imit": ("t",),
}
"""Formula field -> the variables it may use (in call order)."""


def _as_expr(value: str | float | sp.Expr, field: str) -> sp.Expr:
    variables = SLOT_SPECS[field]
    if isinstance(value, bool):
        raise FormulaError(f"{field}: expected a formula, got a bool")
    if isinstance(value, int | float):
        return sp.Float(value) if isinstance(value, float) and not float(value).is_integer() else sp.Integer(int(value))
    if isinstance(value, str):
        return stabilise(parse_formula(value, variables, field=field))
    if isinstance(value, sp.Expr):
        unknown = sorted(s.name for s in value.free_symbols if s.name not in variables)
        if unknown:
            raise FormulaError(f"{field}: unknown symbol(s) {unknown}; {field} may use {list(variables)}")
        return stabilise(value)
    raise FormulaError(f"{field}: expected a formula string or SymPy expression, got {type(value).__name__}")


class MirrorLoss:
    """An MPO preference loss built from closed-form slots; call it on a :class:`LogpBatch`.

    Args:
        mirror: m(u[, t]), strictly increasing in u <= 0. DPO: ``"u"``.
        link: g(z[, t]) on the margin z. DPO: ``"softplus(-z)"``.
        imitation: psi(u_w[, t]) or None. SFT: ``"-u_w"``.
        beta: beta in Alfano et al.; scale of the margin, > 0.
        w_pref: weight of the preference term, a number or a formula in t.
        w_imit: weight of the imitation term, a number or a formula in t (ignored without imitation).
        aggregation: ``sequence`` (sum of token log-probs), ``mean`` (length-normalised) or ``token``
            (m applied to each token's log-prob, then summed).
        reference_free: drop the reference terms m(u_ref).
        name: a label for tables and logs.
    """

    def __init__(self, mirror: str | sp.Expr = "u", link: str | sp.Expr = "softplus(-z)",
                 imitation: str | sp.Expr | None = None, *, beta: float = 0.1,
                 w_pref: float | str | sp.Expr = 1.0, w_imit: float | str | sp.Expr = 1.0,
                 aggregation: Aggregation = "sequence", reference_free: bool = False,
                 name: str | None = None) -> None:
        if not isinstance(beta, int | float) or isinstance(beta, bool) or not beta > 0:
            raise ValueError(f"beta={beta!r}: must be a number > 0 (the scale of the margin)")
        if aggregation not in AGGREGATIONS:
            close = difflib.get_close_matches(str(aggregation), AGGREGATIONS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"aggregation={aggregation!r}: accepted {list(AGGREGATIONS)}{hint}")
        self.mirror = _as_expr(mirror, "mirror")
        self.link = _as_expr(link, "link")
        self.imitation = None if imitation is None else _as_expr(imitation, "imitation")
        self.w_pref = _as_expr(w_pref, "w_pref")
        self.w_imit = _as_expr(w_imit, "w_imit")
        self.beta = float(beta)
        self.aggregation: Aggregation = aggregation
        self.reference_free = bool(reference_free)
        self.name = name or "mirror"
        self._compiled: dict[str, CompiledExpr] = {}
        self._unit_weights = (self.w_pref == 1, self.w_imit == 1)  # decided once, not per training step

    # -- evaluation ---------------------------------------------------------------------------------------

    def fn(self, field: str) -> CompiledExpr:
        """The compiled Torch function of a formula field (``mirror``, ``link``, ...), cached."""
        if field not in self._compiled:
            self._compiled[field] = compile_expr(getattr(self, field), SLOT_SPECS[field])
        return self._compiled[field]

    @property
    def uses_progress(self) -> bool:
        """Whether any slot or weight depends on training progress t (temporal awareness)."""
        exprs = [self.mirror, self.link, self.w_pref, self.w_imit, self.imitation]
        return any(e is not None and sp.Symbol("t", real=True) in e.free_symbols for e in exprs)

    def _mirror_of(self, logps: torch.Tensor, mask: torch.Tensor | None, t: torch.Tensor,
                   aggregated: torch.Tensor | None = None) -> torch.Tensor:
        """m with the loss's aggregation: m(s) for sequence/mean, sum_t m(logp_t) for token; shape [...]."""
        m = self.fn("mirror")
        if self.aggregation == "token":
            safe = logps if mask is None else torch.where(mask, logps, -1.0)  # padding never reaches m
            per_token = m(safe, t.unsqueeze(-1) if t.dim() else t)
            return per_token.sum(-1) if mask is None else torch.where(mask, per_token, 0.0).sum(-1)
        return m(aggregate(logps, mask, self.aggregation) if aggregated is None else aggregated, t)

    def __call__(self, batch: LogpBatch, *, validate: bool = True) -> LossOutput:
        """Per-pair losses and diagnostics for ``batch``; see :class:`LossOutput` for the formulas."""
        if not isinstance(batch, LogpBatch):
            raise TypeError(f"batch: expected a LogpBatch, got {type(batch).__name__}")
        if validate:
            batch.validate()
        if not self.reference_free and not batch.has_reference:
            raise ValueError(
                f"ref_chosen_logps: the {self.name!r} loss needs reference log-probs; pass them in the "
                "LogpBatch or use reference_free=True"
            )
        w_mask, l_mask = batch.bool_masks
        t = torch.as_tensor(batch.progress, dtype=batch.chosen_logps.dtype, device=batch.chosen_logps.device)
        seq = "mean" if self.aggregation == "mean" else "sequence"
        u_w = aggregate(batch.chosen_logps, w_mask, seq)  # [...]
        u_l = aggregate(batch.rejected_logps, l_mask, seq)
        chosen = self._mirror_of(batch.chosen_logps, w_mask, t, u_w)
        rejected = self._mirror_of(batch.rejected_logps, l_mask, t, u_l)
        if not self.reference_free:
            chosen = chosen - self._mirror_of(batch.ref_chosen_logps, w_mask, t)
            rejected = rejected - self._mirror_of(batch.ref_rejected_logps, l_mask, t)
        margin = self.beta * (chosen - rejected)
        preference = self.fn("link")(margin, t)
        unit_pref, unit_imit = self._unit_weights
        loss = preference if unit_pref else self.fn("w_pref")(t) * preference
        if self.imitation is not None:
            imitation = self.fn("imitation")(u_w, t)
            loss = loss + (imitation if unit_imit else self.fn("w_imit")(t) * imitation)
        else:
            imitation = torch.zeros_like(preference)
        with torch.no_grad():  # diagnostics: no gradient, no backward cost
            chosen_rewards, rejected_rewards = self.beta * chosen, self.beta * rejected
            accuracy = (margin > 0).to(margin.dtype)  # chosen_rewards > rejected_rewards
        return LossOutput(loss, margin, chosen_rewards, rejected_rewards, accuracy, preference, imitation,
                          u_w, u_l)

    # -- export -------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description; :meth:`from_dict` reads it back without evaluating code."""
        return {
            "format": FORMAT, "name": self.name, "mirror": to_formula(self.mirror),
            "link": to_formula(self.link),
            "imitation": None if self.imitation is None else to_formula(self.imitation),
            "beta": self.beta, "w_pref": to_formula(self.w_pref), "w_imit": to_formula(self.w_imit),
            "aggregation": self.aggregation, "reference_free": self.reference_free,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MirrorLoss:
        """Rebuild a loss from :meth:`to_dict` output. Formulas are parsed by symloss's grammar only."""
        if not isinstance(data, Mapping):
            raise ValueError(f"MirrorLoss.from_dict: expected a mapping, got {type(data).__name__}")
        allowed = {"format", "name", "mirror", "link", "imitation", "beta", "w_pref", "w_imit",
                   "aggregation", "reference_free", "latex"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ValueError(f"MirrorLoss.from_dict: unknown key(s) {unknown}; accepted {sorted(allowed)}")
        if data.get("format", FORMAT) != FORMAT:
            raise ValueError(f"format={data['format']!r}: this symloss reads {FORMAT!r}")
        kwargs = {k: v for k, v in data.items() if k not in ("format", "latex")}
        for field in ("mirror", "link", "imitation", "w_pref", "w_imit"):
            value = kwargs.get(field)
            if value is not None and not isinstance(value, str | int | float):
                raise ValueError(f"{field}: expected a formula string, got {type(value).__name__}")
        return cls(**kwargs)

    def replace(self, **changes: Any) -> MirrorLoss:
        """A copy with some fields changed (formulas may be strings or SymPy expressions)."""
        kwargs = {"mirror": self.mirror, "link": self.link, "imitation": self.imitation, "beta": self.beta,
                  "w_pref": self.w_pref, "w_imit": self.w_imit, "aggregation": self.aggregation,
                  "reference_free": self.reference_free, "name": self.name}
        unknown = sorted(set(changes) - set(kwargs))
        if unknown:
            raise ValueError(f"replace: unknown field(s) {unknown}; fields are {sorted(kwargs)}")
        return MirrorLoss(**{**kwargs, **changes})

    def latex(self) -> str:
        """The objective in LaTeX: its slots and the per-pair loss."""
        t = r"" if not self.uses_progress else ", t"
        lines = [rf"m(u{t}) = {to_latex(self.mirror)}", rf"g(z{t}) = {to_latex(self.link)}"]
        if self.imitation is not None:
            lines.append(rf"\psi(u_w{t}) = {to_latex(self.imitation)}")
        ref = "" if self.reference_free else r" - m(u_w^{\mathrm{ref}})"
        ref_l = "" if self.reference_free else r" - m(u_l^{\mathrm{ref}})"
        lines.append(rf"z = {to_latex(sp.Float(self.beta))}\left([m(u_w){ref}] - [m(u_l){ref_l}]\right)")
        loss = rf"\mathcal{{L}} = {_weight_latex(self.w_pref)}g(z{t})"
        if self.imitation is not None:
            loss += rf" + {_weight_latex(self.w_imit)}\psi(u_w{t})"
        lines.append(loss)
        return " \\\\\n".join(lines)

    def to_python(self) -> str:
        """Standalone Torch source of the slots (``mirror``, ``link``, ``imitation``, weights)."""
        parts = [to_python(self.mirror, SLOT_SPECS["mirror"], name="mirror"),
                 to_python(self.link, SLOT_SPECS["link"], name="link")]
        if self.imitation is not None:
            parts.append(to_python(self.imitation, SLOT_SPECS["imitation"], name="imitation"))
        header = (f"# symloss MirrorLoss {self.name!r}: beta={self.beta}, aggregation={self.aggregation!r}, "
                  f"reference_free={self.reference_free}, w_pref={to_formula(self.w_pref)!r}, "
                  f"w_imit={to_formula(self.w_imit)!r}\n")
        return header + "\n\n".join(parts)

    def __repr__(self) -> str:
        fields = self.to_dict()
        fields.pop("format")
        body = ", ".join(f"{k}={v!r}" for k, v in fields.items())
        return f"MirrorLoss({body})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MirrorLoss) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(tuple(sorted((k, str(v)) for k, v in self.to_dict().items())))


def _weight_latex(weight: sp.Expr) -> str:
    if weight == 1:
        return ""
    text = to_latex(weight)
    return (rf"\left({text}\right)" if isinstance(weight, sp.Add) else text) + " "
