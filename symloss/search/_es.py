"""The paper's method, for comparison: OpenAI-ES over a parametric monotone mirror map.

Alfano et al. search neural mirror maps with OpenAI-ES (Salimans et al. 2017). symloss's parametric
family is a monotone network in the learned-mirror-map style: non-negative weights over monotone
increasing basis functions built from the data's u range [lo, hi] (W = hi - lo, w = W / 4,
centres c_j = lo + f_j W for f_j in 0.2, 0.5, 0.8, g = sqrt(lo * hi)),

    m_theta(u) = sum_k softplus(theta_k) * phi_k(u),
    phi in {u, -g log(-u), w softplus((u - c_j)/w), w tanh((u - c_j)/w), w e^((u - hi)/w) [, -log(1 - e^u)]},

each scaled so its slope is about 1 where it bends, and each alive in float32 on [lo, hi] (at the far end
of the range its slope is still >= e^-4: never a constant or an underflow, which is what a basis with
fixed centres near 0 gives on summed log-probs of about -340 ... -70). ORPO's term -log(1 - e^u) is in
the basis only when lo >= ORPO_MIN_U (elsewhere it is 0 in float32). Every phi is non-decreasing on all of
u < 0 and the weight of u is > 0, so every theta gives a strictly increasing map.

One ES generation samples ``population // 2`` antithetic pairs theta +- sigma * eps (an odd population
also scores the centre theta), shapes the scores by centred ranks and takes an Adam step on

    grad ~ 1 / (n sigma) * sum_i (rank(theta + sigma eps_i) - rank(theta - sigma eps_i)) * eps_i.

State is explicit (:class:`ESState`, updated by ``replace``, with its own generator, the u range and
sigma / lr): ``ask(state, population) -> (eps, thetas, state)``, ``tell(state, eps, thetas, scores) ->
(state, metrics)``; :func:`state_to_json` / :func:`state_from_json` store it in a checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import sympy as sp

from symloss.expr import SYMBOLS, expc, log1mexp, plog, softplus, tanh
from symloss.objectives import LOSSES, MirrorLoss, get_loss
from symloss.search._fitness import FitnessFn, FitnessResult, safe_call
from symloss.validation import ConfigError, check_choice, check_range, check_tuple, short_repr

_U = SYMBOLS["u"]
NO_RANGE = (-10.0, -0.01)
"""The u range of the basis when none is given: length-normalised log-probs of likely responses."""
CENTRES = (0.2, 0.5, 0.8)
"""Centres of the softplus and tanh terms, as fractions of the range from its low end."""
WIDTH = 0.25
"""Width w of the softplus, tanh and exponential terms, as a fraction of the range."""
ORPO_MIN_U = -20.0
"""ORPO's -log(1 - e^u) joins the basis when the range's low end is >= this (e^u >= 2e-9 there)."""
SIGMA, LR, INIT_WEIGHT = 0.5, 0.25, 0.1
"""Defaults: perturbation std and Adam step on theta; initial weight of every term but u (and ORPO's)."""
_DIGITS = 4
"""Significant digits of the basis's centres and widths (short, readable formulas)."""


def _round(x: float, digits: int = _DIGITS) -> sp.Float:
    return sp.Float(float(f"{x:.{digits}g}"))


def check_u_range(u_range: Sequence[float] | None, name: str = "u_range") -> tuple[float, float]:
    """``u_range`` as (lo, hi) floats with lo < hi < 0 (None: :data:`NO_RANGE`); ConfigError otherwise."""
    if u_range is None:
        return NO_RANGE
    lo, hi = (float(x) for x in check_tuple(name, u_range, length=2, what="lo, hi", example="(-340.0, -70.0)"))
    if not lo < hi < 0:
        raise ConfigError(f"{name}={u_range!r}: must be finite with lo < hi < 0 (log-probabilities), "
                          "e.g. (-340.0, -70.0)")
    return lo, hi


def basis(u_range: Sequence[float] | None = None) -> list[sp.Expr]:
    """The monotone increasing basis functions phi_k(u) for data whose u lies in ``u_range`` (module doc)."""
    lo, hi = check_u_range(u_range)
    slope = float(_round(1 / (WIDTH * (hi - lo))))  # 1 / w, rounded: the formulas stay short
    width = _round(1 / slope)

    def scaled(centre: float) -> sp.Expr:  # (u - c) / w
        return _round(slope) * _U + _round(-slope * centre)

    terms = [_U, -_round(math.sqrt(lo * hi)) * plog(_U)]
    centres = [lo + f * (hi - lo) for f in CENTRES]
    terms += [width * softplus(scaled(c)) for c in centres]
    terms += [width * tanh(scaled(c)) for c in centres]
    terms.append(width * expc(scaled(hi)))
    if lo >= ORPO_MIN_U:
        terms.append(-log1mexp(_U))
    return terms


def weights(theta: np.ndarray) -> np.ndarray:
    """Non-negative weights softplus(theta)."""
    return np.logaddexp(0.0, theta)


def mirror_expr(theta: np.ndarray, u_range: Sequence[float] | None = None, *, digits: int = 6) -> sp.Expr:
    """m_theta(u) over ``basis(u_range)`` as a SymPy expression (weights to ``digits`` significant digits)."""
    phis = basis(u_range)
    if len(theta) != len(phis):
        raise ConfigError(f"theta has {len(theta)} entries: must have {len(phis)}, one per basis function of "
                          f"u_range={check_u_range(u_range)}")
    return sp.Add(*(_round(w, digits) * phi for w, phi in zip(weights(np.asarray(theta, float)), phis, strict=True)))


def initial_theta(init: str, u_range: Sequence[float] | None = None) -> np.ndarray:
    """theta with weight 1 on u (and on -log(1 - e^u) for ``orpo``), INIT_WEIGHT on every other term."""
    phis = basis(u_range)
    theta = np.full(len(phis), math.log(math.expm1(INIT_WEIGHT)))
    theta[0] = math.log(math.expm1(1.0))
    if init == "orpo":
        if not phis[-1].has(log1mexp):
            raise ConfigError(f"init='orpo': ORPO's -log(1 - e^u) is in the basis only when u_range's low end is "
                              f">= {ORPO_MIN_U:g} (got u_range={check_u_range(u_range)}); use init='dpo'")
        theta[-1] = math.log(math.expm1(1.0))
    return theta


@dataclass(frozen=True, kw_only=True)
class ESConfig:
    """OpenAI-ES hyperparameters for :class:`MirrorES` (Salimans et al. 2017; as used by Alfano et al.)."""

    population: int = 16
    """Candidates per generation; >= 2: ``population // 2`` antithetic pairs, plus the centre if odd."""
    generations: int = 10
    """ES generations; >= 1."""
    sigma: float = SIGMA
    """Standard deviation of the parameter perturbations; > 0."""
    lr: float = LR
    """Adam learning rate on theta; > 0."""
    seed: int = 0
    """Seed of the perturbations."""
    base: str = "dpo"
    """Zoo loss providing beta, link and aggregation."""
    init: str = "dpo"
    """Initial map: ``dpo`` (m ~ u) or ``orpo`` (m ~ u - log(1 - e^u); needs a u range near 0)."""
    u_range: tuple[float, float] | None = None
    """The data's u range (lo, hi), lo < hi < 0, on which the basis is built; None: NO_RANGE."""

    def __post_init__(self) -> None:
        check_range("population", self.population, lo=2, integer=True, why="one antithetic pair")
        check_range("generations", self.generations, lo=1, integer=True)
        check_range("sigma", self.sigma, lo=0, lo_open=True)
        check_range("lr", self.lr, lo=0, lo_open=True)
        check_range("seed", self.seed, integer=True)
        check_choice("base", self.base, LOSSES)
        check_choice("init", self.init, ("dpo", "orpo"))
        check_u_range(self.u_range)


@dataclass(frozen=True, kw_only=True)
class ESState:
    """Explicit ES state after ``step`` generations: the search distribution's centre, Adam's moments, the
    generator, the best theta scored so far, and the fixed u range, sigma and lr of the run."""

    theta: np.ndarray
    adam_m: np.ndarray
    adam_v: np.ndarray
    step: int
    rng_state: dict[str, Any]
    """``numpy.random.PCG64`` state of the perturbations."""
    best_theta: np.ndarray
    best_score: float = -math.inf
    u_range: tuple[float, float] = NO_RANGE
    sigma: float = SIGMA
    lr: float = LR
    history: tuple[dict[str, float], ...] = field(default_factory=tuple)


def init_state(u_range: Sequence[float] | None = None, *, seed: int = 0, sigma: float = SIGMA, lr: float = LR,
               init: str = "dpo") -> ESState:
    """The state before the first generation: theta = :func:`initial_theta`, the generator seeded."""
    check_range("seed", seed, lo=0, integer=True)
    check_range("sigma", sigma, lo=0, lo_open=True)
    check_range("lr", lr, lo=0, lo_open=True)
    u_range = check_u_range(u_range)
    theta = initial_theta(init, u_range)
    rng = np.random.default_rng(seed)
    return ESState(theta=theta, adam_m=np.zeros_like(theta), adam_v=np.zeros_like(theta), step=0,
                   rng_state=rng.bit_generator.state, best_theta=theta.copy(), u_range=u_range, sigma=float(sigma),
                   lr=float(lr))


def ask(state: ESState, population: int) -> tuple[np.ndarray, np.ndarray, ESState]:
    """Antithetic perturbations: (eps [population // 2, d], thetas [population, d], state); the rows of
    thetas are theta + sigma eps, then theta - sigma eps, then (odd population) theta itself."""
    check_range("population", population, lo=2, integer=True, why="one antithetic pair")
    rng = np.random.default_rng()
    rng.bit_generator.state = state.rng_state
    eps = rng.standard_normal((population // 2, state.theta.size))
    rows = [state.theta + state.sigma * eps, state.theta - state.sigma * eps]
    if population % 2:
        rows.append(state.theta[None, :])
    return eps, np.concatenate(rows), replace(state, rng_state=rng.bit_generator.state)


def centred_ranks(scores: np.ndarray) -> np.ndarray:
    """Fitness shaping: ranks mapped to [-0.5, 0.5] (ties broken by order); robust to outliers and -inf."""
    ranks = np.empty(len(scores))
    ranks[np.argsort(scores, kind="stable")] = np.arange(len(scores))
    return ranks / max(1, len(scores) - 1) - 0.5


def tell(state: ESState, eps: np.ndarray, thetas: np.ndarray,
         scores: Sequence[float]) -> tuple[ESState, dict[str, float]]:
    """Adam ascent on the ES estimate of the fitness gradient (pairs only); tracks the best theta seen."""
    scores = np.where(np.isfinite(np.asarray(scores, dtype=float)), scores, -np.inf)
    half = len(eps)
    shaped = centred_ranks(scores[: 2 * half])
    grad = ((shaped[:half] - shaped[half:])[:, None] * eps).sum(0) / (2 * half * state.sigma)
    step = state.step + 1
    m = 0.9 * state.adam_m + 0.1 * grad
    v = 0.999 * state.adam_v + 0.001 * grad**2
    update = state.lr * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
    best = int(np.argmax(scores))
    improved = scores[best] > state.best_score
    finite = scores[np.isfinite(scores)]
    metrics = {"generation": step, "best": float(scores[best]), "mean": float(finite.mean()) if finite.size
               else -math.inf, "failed": int(len(scores) - finite.size)}
    new = replace(state, theta=state.theta + update, adam_m=m, adam_v=v, step=step,
                  best_theta=thetas[best].copy() if improved else state.best_theta,
                  best_score=float(scores[best]) if improved else state.best_score,
                  history=(*state.history, metrics))
    return new, metrics


STATE_FORMAT = "symloss.search.es_state/1"


class ESStateError(ConfigError):
    """Stored ES state that this version did not write: a field is missing, mistyped or out of range."""


def state_to_json(state: ESState) -> dict[str, Any]:
    """The state as JSON values (floats round-trip exactly; best_score -inf as null)::

        {"format", "u_range": [lo, hi], "sigma", "lr", "step", "theta", "adam_m", "adam_v", "best_theta":
         [d floats], "best_score": float | null, "rng_state": PCG64 state, "history": [{metric: number | null}]}
    """
    return {"format": STATE_FORMAT, "u_range": list(state.u_range), "sigma": state.sigma, "lr": state.lr,
            "step": state.step, **{name: [float(x) for x in getattr(state, name)] for name in _VECTORS},
            "best_score": state.best_score if math.isfinite(state.best_score) else None,
            "rng_state": state.rng_state,
            "history": [{k: v if math.isfinite(v) else None for k, v in h.items()} for h in state.history]}


_VECTORS = ("theta", "adam_m", "adam_v", "best_theta")
_FIX = "restore it from a copy, or start a new run"


def _fail(where: str, value: Any, expected: str) -> ESStateError:
    return ESStateError(f"ES state: {where}={short_repr(value)}: must be {expected}; {_FIX}")


def _number(data: dict[str, Any], name: str, *, positive: bool = False) -> float:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or (
            positive and value <= 0):
        raise _fail(name, value, "a finite number" + (" > 0" if positive else ""))
    return float(value)


def _rng_state(value: Any) -> dict[str, Any]:
    expected = ("a numpy PCG64 state {'bit_generator': 'PCG64', 'state': {'state': int, 'inc': int}, "
                "'has_uint32': 0 or 1, 'uinteger': int}")
    ok = isinstance(value, dict) and set(value) == {"bit_generator", "state", "has_uint32", "uinteger"} and \
        value["bit_generator"] == "PCG64" and isinstance(value["state"], dict) and \
        set(value["state"]) == {"state", "inc"} and value["has_uint32"] in (0, 1) and \
        all(type(x) is int and 0 <= x < 2**128 for x in (*value["state"].values(), value["uinteger"]))
    if not ok:
        raise _fail("rng_state", value, expected)
    return {"bit_generator": "PCG64", "state": dict(value["state"]), "has_uint32": int(value["has_uint32"]),
            "uinteger": value["uinteger"]}


def state_from_json(data: Any) -> ESState:
    """The :class:`ESState` of :func:`state_to_json`'s output, every field checked (nothing is evaluated);
    :class:`ESStateError` (a ValueError) naming the field otherwise."""
    if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
        raise _fail("format", data.get("format") if isinstance(data, dict) else data, repr(STATE_FORMAT))
    try:
        u_range = check_u_range(data.get("u_range"))
    except ConfigError as exc:
        raise ESStateError(f"ES state: {exc}; {_FIX}") from None
    if data.get("u_range") is None:
        raise _fail("u_range", None, "[lo, hi] with lo < hi < 0")
    size = len(basis(u_range))
    vectors = {}
    for name in _VECTORS:
        value = data.get(name)
        if not isinstance(value, list) or len(value) != size or any(
                isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x) for x in value):
            raise _fail(name, value, f"a list of {size} finite numbers (one per basis function of u_range={u_range})")
        vectors[name] = np.array(value, dtype=float)
    step = data.get("step")
    if type(step) is not int or step < 0:
        raise _fail("step", step, "an integer >= 0")
    best = data.get("best_score", "missing")
    if best is not None:
        best = _number(data, "best_score")
    history = data.get("history")
    if not isinstance(history, list) or not all(
            isinstance(h, dict) and all(isinstance(k, str) and (v is None or isinstance(v, int | float))
                                        for k, v in h.items()) for h in history):
        raise _fail("history", history, "a list of {metric name: number}")
    return ESState(**vectors, step=step, rng_state=_rng_state(data.get("rng_state")),
                   best_score=-math.inf if best is None else best, u_range=u_range,
                   sigma=_number(data, "sigma", positive=True), lr=_number(data, "lr", positive=True),
                   history=tuple(dict(h) for h in history))


class MirrorES:
    """OpenAI-ES over :func:`mirror_expr`'s family with its own fitness; ``fit`` returns self; ``best_`` is a
    MirrorLoss. (The search's ``--method es`` drives :func:`symloss.search._es_search.es_generation` instead.)"""

    def __init__(self, config: ESConfig | None = None, *, fitness: FitnessFn, **kwargs: Any) -> None:
        self.config = config if config is not None else ESConfig(**kwargs)
        self.fitness = fitness

    def loss_for(self, theta: np.ndarray) -> MirrorLoss:
        return get_loss(self.config.base).replace(mirror=mirror_expr(theta, self.config.u_range), name="es")

    def fit(self) -> MirrorES:
        c = self.config
        state = init_state(c.u_range, seed=c.seed, sigma=c.sigma, lr=c.lr, init=c.init)
        for _ in range(c.generations):
            eps, thetas, state = ask(state, c.population)
            results = safe_call(self.fitness, [self.loss_for(th) for th in thetas])
            state, _ = tell(state, eps, thetas, [r.mean if r.ok else -math.inf for r in results])
        self.state_ = state
        self.best_theta_ = state.best_theta
        self.best_score_ = state.best_score
        self.best_ = self.loss_for(state.best_theta)
        self.history_ = list(state.history)
        return self


__all__ = ["ESConfig", "ESState", "ESStateError", "FitnessResult", "MirrorES", "basis", "init_state", "mirror_expr",
           "state_from_json", "state_to_json"]
