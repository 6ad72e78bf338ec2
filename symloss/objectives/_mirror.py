"""The Mirror Preference Optimization (MPO) loss template (Alfano et al., arXiv 2411.06568; PAPER.md).

With u = log pi(y) aggregated over the response's tokens and m the mirror map,

    z    = beta * ( [m(u_w) - m(u_w_ref)] - [m(u_l) - m(u_l_ref)] )          (margin)
    loss = w_pref(t) * g(z, t) + w_imit(t) * psi(u_w, t)                       (per pair)
    L    = (1/B) sum_i loss_i,   or  -b' log (1/B) sum_i exp(-loss_i / b')     (batch: ``reduction``)

DPO is m(u) = u, g(z) = softplus(-z); ORPO is the reference-free log-odds map m(u) = u - log(1 - e^u) on
length-normalised log-probs with psi(u_w) = -u_w. Reference-free losses drop the m(u_ref) terms.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field, fields
from typing import Any

import sympy as sp
import torch

from symloss.expr import (
    CHECKS,
    CheckResult,
    CompiledExpr,
    FormulaError,
    compile_expr,
    parse_formula,
    stabilise,
    to_formula,
    to_latex,
    to_python,
)
from symloss.objectives._batch import (
    AGGREGATIONS,
    REDUCTIONS,
    Aggregation,
    LogpBatch,
    LossOutput,
    Reduction,
    aggregate,
    reduce_pairs,
)
from symloss.validation import ConfigError, check_bool, check_choice, check_range, did_you_mean

FORMAT = "symloss.mirror_loss/1"

Formula = str | float | sp.Expr
"""A formula slot's input: text in symloss's grammar, a number or a SymPy expression (stored as SymPy)."""

_T = sp.Symbol("t", real=True)


def _slot(default: Formula | None, *variables: str) -> Any:
    """A formula field whose formula may use ``variables`` (in call order)."""
    return field(default=default, metadata={"variables": variables})


def _merge_modules(sources: list[str]) -> str:
    """One module from the per-slot modules of ``expr.to_python``: their shared docstring and imports once, each
    helper function once (same name, same text), then every slot's function."""
    seen: set[str] = set()
    out: list[str] = []
    for source in sources:
        for block in source.strip("\n").split("\n\n\n"):
            if block not in seen:
                seen.add(block)
                out.append(block)
    return "\n\n\n".join(out) + "\n"


def _check_constants(expr: sp.Expr, name: str, shown: str) -> sp.Expr:
    """``expr`` if every constant in it is a finite real number; else a FormulaError naming the field."""
    named = {sp.zoo: "zoo (complex infinity)", sp.nan: "nan", sp.oo: "oo (infinity)", -sp.oo: "-oo", sp.I: "I"}
    bad = [text for c, text in named.items() if expr.has(c)]
    for number in expr.atoms(sp.Number):
        try:
            finite = math.isfinite(float(number))
        except (OverflowError, TypeError, ValueError):
            finite = False
        if not finite:
            bad.append(str(number) if len(str(number)) < 20 else "inf" if number > 0 else "-inf")
    if bad:
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise FormulaError(
            f"{name}={shown!r}: contains the non-finite or non-real constant {bad[0]} (from e.g. log(0), a "
            "division by 0 or a number beyond 1.8e308); every constant must be a finite real number"
        )
    return expr


@functools.lru_cache(maxsize=4096)
def _parsed(text: str, name: str) -> sp.Expr:
    """``text`` parsed by symloss's grammar for slot ``name``, stabilised and checked (cached: SymPy's
    pattern rewriting costs milliseconds, and zoo losses, replace and from_dict rebuild the same slots)."""
    return _check_constants(stabilise(parse_formula(text, SLOT_SPECS[name], field=name)), name, text)


@functools.lru_cache(maxsize=4096)
def _stabilised(expr: sp.Expr, name: str) -> sp.Expr:
    """A SymPy slot expression, stabilised and checked (cached like :func:`_parsed`)."""
    variables = SLOT_SPECS[name]
    unknown = sorted(s.name for s in expr.free_symbols if s.name not in variables)
    if unknown:
        raise FormulaError(f"{name}: unknown symbol(s) {unknown}; {name} may use {list(variables)}")
    return _check_constants(expr if expr.is_Number else stabilise(expr), name, to_formula(expr))


def _as_expr(value: Formula, name: str) -> sp.Expr:
    if isinstance(value, bool) or value is None:
        raise FormulaError(f"{name}={value!r}: expected a formula (a string in symloss's grammar or a number)")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise FormulaError(f"{name}={value!r}: must be a finite number or a formula in {list(SLOT_SPECS[name])}")
        return sp.Float(value) if isinstance(value, float) and not float(value).is_integer() else sp.Integer(int(value))
    if isinstance(value, str):
        return _parsed(value, name)
    if isinstance(value, sp.Expr):
        return _stabilised(value, name)
    raise FormulaError(f"{name}: expected a formula string or SymPy expression, got {type(value).__name__}")


def _canonical_text(expr: sp.Expr, name: str) -> str:
    """The text of ``expr`` after one more trip through the grammar: SymPy's printed form of an expression
    may parse to a differently grouped but equal one (``-(t + 6)*u`` -> ``(-t - 6)*u``, a Float's last digit),
    which then prints stably; equality compares this form, so ``from_dict(to_dict(loss)) == loss``."""
    text = to_formula(expr)
    try:
        return to_formula(_parsed(text, name))
    except FormulaError:  # printed text the grammar cannot read back: compare as printed
        return text


@dataclass(frozen=True, eq=False, repr=False)
class MirrorLoss:
    """An MPO preference loss built from closed-form slots; call it on a :class:`LogpBatch`.

    An immutable value: assigning a field raises :class:`dataclasses.FrozenInstanceError`; use
    :meth:`replace` for a changed copy. Every field is validated once, here; formulas are parsed by symloss's
    grammar (never evaluated) and compiled to Torch on first use. Equality and hashing compare every field,
    formulas by their text.

    The per-pair losses ``loss(batch).loss`` (shape ``[..., B]``) become the batch loss with
    :meth:`reduce` (the mean, or Dr. DPO's log-mean-exp), which every trainer calls.
    """

    mirror: Formula = _slot("u", "u", "t")
    """m(u[, t]), strictly increasing in u <= 0. DPO: ``"u"``."""
    link: Formula = _slot("softplus(-z)", "z", "t")
    """g(z[, t]) on the margin z. DPO: ``"softplus(-z)"``."""
    imitation: Formula | None = _slot(None, "u_w", "t")
    """psi(u_w[, t]) or None. SFT: ``"-u_w"``."""
    _: KW_ONLY
    beta: float = 0.1
    """beta in Alfano et al.: the scale of the margin; a finite number > 0."""
    w_pref: Formula = _slot(1.0, "t")
    """Weight of the preference term, a finite number or a formula in t."""
    w_imit: Formula = _slot(1.0, "t")
    """Weight of the imitation term, a finite number or a formula in t (ignored without imitation)."""
    aggregation: Aggregation = "sequence"
    """``sequence`` (sum of token log-probs), ``mean`` (length-normalised) or ``token`` (m applied to each
    token's log-prob, then summed)."""
    reference_free: bool = False
    """Drop the reference terms m(u_ref) (a JSON boolean; strings such as ``"no"`` are refused)."""
    reduction: Reduction = "mean"
    """How :meth:`reduce` turns per-pair losses into the batch loss: ``mean`` or ``logmeanexp`` (Dr. DPO)."""
    temperature: float = 1.0
    """b' of the ``logmeanexp`` reduction (Dr. DPO's beta'); a finite number > 0, unused by ``mean``."""
    name: str = "mirror"
    """A label for tables and logs."""

    def __post_init__(self) -> None:
        put = object.__setattr__  # the one place fields are normalised; afterwards the value is frozen
        put(self, "beta", float(check_range("beta", self.beta, lo=0, lo_open=True, why="the scale of the margin")))
        check_choice("aggregation", self.aggregation, AGGREGATIONS)
        check_bool("reference_free", self.reference_free)
        check_choice("reduction", self.reduction, REDUCTIONS)
        put(self, "temperature", float(check_range("temperature", self.temperature, lo=0, lo_open=True,
                                                   why="b' of the logmeanexp reduction")))
        if self.name is None:
            put(self, "name", "mirror")
        if not isinstance(self.name, str):
            raise ConfigError(f"name={self.name!r}: must be a string (a label for tables and logs)")
        for slot in SLOT_SPECS:
            value = getattr(self, slot)
            if value is not None or slot != "imitation":
                put(self, slot, _as_expr(value, slot))
        self._reset_caches()

    def _reset_caches(self) -> None:
        object.__setattr__(self, "_compiled", {})
        object.__setattr__(self, "_key", None)
        object.__setattr__(self, "_unit_weights", (self.w_pref == 1, self.w_imit == 1))  # once, not per step

    def __getstate__(self) -> dict[str, Any]:  # pickle the fields (and a subclass's own attributes), not caches
        return {k: v for k, v in self.__dict__.items() if k not in ("_compiled", "_key", "_unit_weights")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)
        self._reset_caches()

    # -- what the loss reads and how a batch of pairs is reduced -------------------------------------------

    @property
    def needs_token_logps(self) -> bool:
        """Whether the loss reads per-token log-probs (``aggregation == "token"``: m is applied to each token).

        When False, the aggregated log-probs suffice (token sums for ``sequence``, length-normalised means
        for ``mean``: see :attr:`aggregation`), so a trainer may hand over one-"token" sequences built with
        :meth:`LogpBatch.from_sequence_logps`. A subclass that overrides ``__call__`` is assumed to read the
        tokens (True) unless it overrides this property too."""
        return self.aggregation == "token" or type(self).__call__ is not MirrorLoss.__call__

    def reduce(self, per_pair: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The batch loss from per-pair losses ``[..., B] -> [...]`` (last axis: pairs), by :attr:`reduction`.

        ``mean``: (1/B) sum_i l_i. ``logmeanexp``: -b' log (1/B) sum_i exp(-l_i / b') with b' =
        :attr:`temperature` (see :func:`~symloss.objectives.reduce_pairs`). Trainers call this instead of
        ``.mean()``, once per member over the pairs of the batch they see."""
        return reduce_pairs(per_pair, mask, how=self.reduction, temperature=self.temperature)

    def check(self, u_ranges: Mapping[str, tuple[float, float]] | None = None) -> dict[str, CheckResult]:
        """symloss's validity check of each slot (:data:`symloss.expr.CHECKS`): m strictly increasing, g
        decreasing near 0, psi finite; ``{slot: CheckResult}``. ``u_ranges``: slot -> (low, high), the u range
        of the data the loss is meant for (a search's best.json records it), instead of the checks' default
        range for ``mirror`` / ``imitation``. Loaders warn with the failing reasons."""
        results = {}
        for slot, check in CHECKS.items():
            expr = getattr(self, slot)
            if expr is not None:
                extra = {"u_range": tuple(u_ranges[slot])} if u_ranges and slot in u_ranges else {}
                results[slot] = check(expr, uses_t=_T in expr.free_symbols, **extra)
        return results

    # -- evaluation ---------------------------------------------------------------------------------------

    def fn(self, slot: str) -> CompiledExpr:
        """The compiled Torch function of a formula field (``mirror``, ``link``, ...), cached.

        The cache cannot go stale: the fields are frozen, and :meth:`replace` builds a new loss."""
        if slot not in self._compiled:
            self._compiled[slot] = compile_expr(getattr(self, slot), SLOT_SPECS[slot])
        return self._compiled[slot]

    @property
    def uses_progress(self) -> bool:
        """Whether any slot or weight depends on training progress t (temporal awareness)."""
        return any(getattr(self, s) is not None and _T in getattr(self, s).free_symbols for s in SLOT_SPECS)

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
        """A JSON-serialisable description (every field, formulas as text); :meth:`from_dict` reads it back
        without evaluating code."""
        out: dict[str, Any] = {"format": FORMAT}
        for name in FIELDS:
            value = getattr(self, name)
            out[name] = to_formula(value) if name in SLOT_SPECS and value is not None else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MirrorLoss:
        """Rebuild a loss from :meth:`to_dict` output (``format`` and ``latex`` keys optional, missing fields
        take their defaults). Formulas are parsed by symloss's grammar only; every field is validated."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"MirrorLoss.from_dict: expected a mapping, got {type(data).__name__}")
        allowed = ("format", "latex", *FIELDS)
        unknown = sorted(str(k) for k in data if k not in allowed)
        if unknown:
            raise ConfigError(f"MirrorLoss.from_dict: unknown key(s) {unknown}; accepted {sorted(allowed)}"
                              f"{did_you_mean(unknown[0], allowed, cutoff=0.8)}")
        if data.get("format", FORMAT) != FORMAT:
            raise ConfigError(f"format={data['format']!r}: this symloss reads {FORMAT!r}")
        kwargs = {k: v for k, v in data.items() if k in FIELDS}
        for slot in SLOT_SPECS:
            value = kwargs.get(slot)
            if value is not None and (isinstance(value, bool) or not isinstance(value, str | int | float)):
                raise FormulaError(f"{slot}: expected a formula string or a number, got {type(value).__name__}")
        return cls(**kwargs)

    def replace(self, **changes: Any) -> MirrorLoss:
        """A copy with some fields changed (formulas may be strings or SymPy expressions)."""
        unknown = sorted(set(changes) - set(FIELDS))
        if unknown:
            raise ConfigError(f"replace: unknown field(s) {unknown}; fields are {list(FIELDS)}"
                              f"{did_you_mean(unknown[0], FIELDS)}")
        return MirrorLoss(**{**{name: getattr(self, name) for name in FIELDS}, **changes})

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
        if self.reduction == "logmeanexp":
            b = "" if self.temperature == 1 else to_latex(sp.Float(self.temperature))
            scaled = rf"-\mathcal{{L}}_i / {b}" if b else r"-\mathcal{L}_i"
            lines.append(rf"\mathcal{{L}}_{{\mathrm{{batch}}}} = -{b}\log\frac{{1}}{{B}}\sum_{{i=1}}^{{B}}"
                         rf"\exp\left({scaled}\right)")
        return " \\\\\n".join(lines)

    def to_python(self) -> str:
        """Standalone Torch source of the slots (``mirror``, ``link``, ``imitation``, weights)."""
        parts = [to_python(self.mirror, SLOT_SPECS["mirror"], name="mirror"),
                 to_python(self.link, SLOT_SPECS["link"], name="link")]
        if self.imitation is not None:
            parts.append(to_python(self.imitation, SLOT_SPECS["imitation"], name="imitation"))
        header = (f"# symloss MirrorLoss {self.name!r}: beta={self.beta}, aggregation={self.aggregation!r}, "
                  f"reference_free={self.reference_free}, w_pref={to_formula(self.w_pref)!r}, "
                  f"w_imit={to_formula(self.w_imit)!r}, reduction={self.reduction!r}, "
                  f"temperature={self.temperature}\n")
        return header + _merge_modules(parts)

    def __repr__(self) -> str:
        fields_ = self.to_dict()
        fields_.pop("format")
        body = ", ".join(f"{k}={v!r}" for k, v in fields_.items())
        return f"MirrorLoss({body})"

    def _identity(self) -> tuple:
        """Every field, formulas in canonical text (:func:`_canonical_text`): what equality and the hash
        compare (computed once)."""
        if self._key is None:
            values = tuple(_canonical_text(value, name) if name in SLOT_SPECS and value is not None else value
                           for name, value in ((name, getattr(self, name)) for name in FIELDS))
            object.__setattr__(self, "_key", values)
        return self._key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MirrorLoss) and self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())


FIELDS: tuple[str, ...] = tuple(f.name for f in fields(MirrorLoss))
"""The fields of :class:`MirrorLoss`, in order: what to_dict writes and from_dict, replace and the artefact
loader accept."""

SLOT_SPECS: dict[str, tuple[str, ...]] = {
    f.name: f.metadata["variables"] for f in fields(MirrorLoss) if "variables" in f.metadata
}
"""Formula field -> the variables it may use (in call order)."""


def _weight_latex(weight: sp.Expr) -> str:
    if weight == 1:
        return ""
    text = to_latex(weight)
    return (rf"\left({text}\right)" if isinstance(weight, sp.Add) else text) + " "
