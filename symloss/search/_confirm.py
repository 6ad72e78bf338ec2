"""Held-out confirmation: the best discovered losses and the best tuned baselines retrained on fresh seeds.

A search ends by writing its contenders (``contenders.json``: the top discovered losses and the top baselines,
with the search's own numbers for reference) and retraining them with the run's ``confirm_protocol``, on
training seeds and start states that no rung of the search used. :func:`confirm` trains every contender in
ONE batched fitness call (common seeds and start states, so per-seed scores pair up) and computes, per loss,
the mean, std and a bootstrap 95% CI of the mean; :func:`paired_verdict` compares the search's best discovered
loss with the best baseline on the paired per-seed differences d_s = x_s - y_s:

- mean difference d̄ and its CI: the hull of the bootstrap CI (``scipy.stats.bootstrap``, BCa, fixed seed:
  deterministic) and the Student-t CI d̄ +- t_{0.975, n-1} sd(d) / sqrt(n) (the bootstrap alone spans little
  more than [min d, max d] on a few seeds: 2 positive differences would read as a win);
- paired t-test p (``scipy.stats.ttest_rel``), and Welch's unpaired p (``ttest_ind(equal_var=False)``) for
  reference;
- outcome ``win`` iff the CI's lower end > 0, ``loss`` iff its upper end < 0, else ``tie`` (not resolved at
  this number of seeds);
- seeds needed to resolve the observed difference (two-sided alpha, power 1 - beta, normal approximation):
  n = ceil(((z_{1-alpha/2} + z_{1-beta}) * sd(d) / |d̄|)^2).

The discovered loss of the verdict is fixed before the confirmation: the first discovered contender (the
search's top-ranked one), so its confirmation mean carries no selection bias. The best baseline is the one with
the highest CONFIRMATION mean: chosen on the data it is compared on, which favours the baseline, so a win is a
conservative claim.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy import stats

from symloss.objectives import MirrorLoss
from symloss.search._artefacts import read_config
from symloss.search._config import SearchConfig
from symloss.search._fitness import FitnessFn, FitnessResult, safe_call
from symloss.search._rundir import RunDirError
from symloss.validation import short_repr

Kind = Literal["discovered", "baseline"]
KINDS: tuple[str, ...] = ("discovered", "baseline")
CONTENDERS_FILE = "contenders.json"
CONTENDERS_FORMAT = "symloss.contenders/1"
CONFIDENCE = 0.95
"""Confidence level of every interval of the confirmation."""
BOOTSTRAP_SEED = 0
"""Seed of the bootstrap resampling (the same data always gives the same report)."""
BOOTSTRAP_RESAMPLES = 9999


@dataclass(frozen=True)
class Contender:
    """A loss to confirm: its label, ``kind`` and the search's numbers for it (for reference, not a result)."""

    label: str
    kind: Kind
    loss: MirrorLoss
    rung: int | None = None
    """Highest rung of the search it reached (0 = the search fidelity); None if unknown."""
    mean: float | None = None
    """Its fitness at that rung in the search (selected on it: biased upwards, not a result)."""
    std: float | None = None
    seeds: tuple[int, ...] = ()
    """The training seeds of that search fitness."""

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "kind": self.kind, "loss": self.loss.to_dict(), "rung": self.rung,
                "mean": self.mean, "std": self.std, "seeds": list(self.seeds)}


@dataclass(frozen=True)
class ContenderResult:
    """A contender's confirmation: mean, std (ddof 1), CI of the mean (None below 2 seeds) and per-seed scores;
    ``reason`` is why it failed (then it has no numbers and is left out of the verdict)."""

    contender: Contender
    mean: float = math.nan
    std: float = math.nan
    ci: tuple[float, float] | None = None
    seeds: tuple[int, ...] = ()
    per_seed: tuple[float, ...] = ()
    reason: str = ""

    @property
    def ok(self) -> bool:
        return not self.reason


@dataclass(frozen=True)
class Verdict:
    """A paired comparison of ``discovered`` against ``baseline`` (labels) on their common seeds.

    ``outcome``: ``win`` / ``loss`` / ``tie`` (see the module docstring), or ``none`` when there is nothing to
    compare (``note`` says why). ``difference``: the mean paired difference; ``ci`` its CI (None below 2 seeds)."""

    outcome: Literal["win", "loss", "tie", "none"]
    discovered: str | None
    baseline: str | None
    n: int = 0
    difference: float = math.nan
    sd: float = math.nan
    ci: tuple[float, float] | None = None
    p_paired: float = math.nan
    p_welch: float = math.nan
    seeds_needed: int | None = None
    note: str = ""

    def line(self) -> str:
        """The one verdict line of the report."""
        if self.outcome == "none":
            return f"Verdict: NONE: {self.note}"
        ci = interval_text(self.ci)
        head = (f"Verdict: {self.outcome.upper()}: {self.discovered} vs the best baseline {self.baseline}: mean "
                f"paired difference {self.difference:+.4g}, {CONFIDENCE:.0%} CI {ci}, paired t-test p = "
                f"{p_text(self.p_paired)}, over {self.n} seeds")
        if self.outcome == "win":
            return head + " (the CI excludes zero: the discovered loss is better)."
        if self.outcome == "loss":
            return head + " (the CI excludes zero: the baseline is better)."
        note = f"; {self.note}" if self.note else ""
        return head + f" (the CI includes zero: not resolved at this number of seeds{note})."


@dataclass(frozen=True)
class Confirmation:
    """What :func:`confirm` measured: one result per contender (best first, failed last), each non-baseline
    ok contender's comparison with the best baseline (by label), and the verdict for the best discovered."""

    results: tuple[ContenderResult, ...]
    comparisons: Mapping[str, Verdict]
    verdict: Verdict
    protocol_text: str

    @property
    def seeds(self) -> tuple[int, ...]:
        return next((r.seeds for r in self.results if r.ok), ())

    def best(self, kind: Kind) -> ContenderResult | None:
        """The ok contender of ``kind`` with the highest confirmation mean, or None."""
        return next((r for r in self.results if r.ok and r.contender.kind == kind), None)


# -- contenders.json ------------------------------------------------------------------------------------------

def write_contenders(path: Path | str, contenders: Sequence[Contender]) -> Path:
    """Write ``contenders`` (see :func:`read_contenders`) to ``path`` atomically (through ``NAME.tmp``)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"format": CONTENDERS_FORMAT, "contenders": [c.to_dict() for c in contenders]},
                              indent=1) + "\n")
    tmp.replace(path)
    return path


def read_contenders(path: Path | str) -> list[Contender]:
    """The contenders in ``path``, every field validated; formulas parsed by symloss's grammar, never evaluated.
    A bad file raises :class:`RunDirError`, one line naming the file, the field and the fix."""
    path = Path(path)
    fix = f"fix the file, or write it again by finishing the run (`symloss search --resume {path.parent}`)"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"{path}: no such file; a search writes it when it ends: finish the run (`symloss search "
                          f"--resume {path.parent}`) or give the directory of a finished run") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise RunDirError(f"{path}: cannot be read as JSON ({type(exc).__name__}: {exc}); {fix}") from None
    if not isinstance(data, dict) or data.get("format") != CONTENDERS_FORMAT or not isinstance(data.get("contenders"), list):
        raise RunDirError(f"{path}: expected an object with format={CONTENDERS_FORMAT!r} and a list 'contenders'; "
                          f"{fix}")
    out = [_contender(item, f"{path}: contenders[{i}]", fix) for i, item in enumerate(data["contenders"])]
    labels = [c.label for c in out]
    for i, label in enumerate(labels):
        if label in labels[:i]:
            raise RunDirError(f"{path}: contenders[{i}].label={label!r}: given twice; each needs its own label; {fix}")
    return out


def _contender(item: Any, where: str, fix: str) -> Contender:
    if not isinstance(item, dict):
        raise RunDirError(f"{where}: must be an object with label, kind, loss, rung, mean, std, seeds; {fix}")
    unknown = sorted(set(map(str, item)) - {"label", "kind", "loss", "rung", "mean", "std", "seeds"})
    if unknown:
        raise RunDirError(f"{where}: unknown field {short_repr(unknown[0])}; {fix}")
    label, kind = item.get("label"), item.get("kind")
    if not isinstance(label, str) or not 0 < len(label) <= 200:
        raise RunDirError(f"{where}.label={short_repr(label)}: must be a text of 1 to 200 characters; {fix}")
    if kind not in KINDS:
        raise RunDirError(f"{where}.kind={short_repr(kind)}: must be one of {list(KINDS)}; {fix}")
    if not isinstance(item.get("loss"), dict):
        raise RunDirError(f"{where}.loss={short_repr(item.get('loss'))}: must be the object of "
                          f"MirrorLoss.to_dict(); {fix}")
    try:
        loss = MirrorLoss.from_dict(item["loss"])
    except (ValueError, TypeError, RecursionError) as exc:
        raise RunDirError(f"{where}.loss: invalid loss ({exc}); {fix}") from None
    numbers = {}
    for name, integer in (("rung", True), ("mean", False), ("std", False)):
        value = item.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int if integer else int | float)
                                  or not math.isfinite(value) or (name != "mean" and value < 0)):
            what = "an integer >= 0" if integer else ("a finite number" if name == "mean" else "a number >= 0")
            raise RunDirError(f"{where}.{name}={short_repr(value)}: must be {what} or null; {fix}")
        numbers[name] = value
    seeds = item.get("seeds", [])
    if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise RunDirError(f"{where}.seeds={short_repr(seeds)}: must be a list of integers >= 0; {fix}")
    return Contender(label, kind, loss, seeds=tuple(seeds), **numbers)


def read_run(run_dir: Path | str) -> tuple[SearchConfig, list[Contender]]:
    """The :class:`SearchConfig` of ``run_dir/config.json`` and its ``contenders.json`` (RunDirError if bad)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"RUN_DIR={str(run_dir)!r}: no such directory; give the run directory of a finished "
                          "`symloss search` (it holds config.json and contenders.json)")
    config = SearchConfig.from_dict(read_config(run_dir))
    return config, read_contenders(run_dir / CONTENDERS_FILE)


def top_contenders(contenders: Sequence[Contender], top: int | None) -> list[Contender]:
    """The first ``top`` contenders of each kind, in file order (the search writes them best first)."""
    if top is None:
        return list(contenders)
    counts = dict.fromkeys(KINDS, 0)
    out = []
    for c in contenders:
        counts[c.kind] += 1
        if counts[c.kind] <= top:
            out.append(c)
    return out


# -- statistics -------------------------------------------------------------------------------------------------

def mean_ci(values: Sequence[float], *, confidence: float = CONFIDENCE, method: str = "BCa",
            seed: int = BOOTSTRAP_SEED, n_resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float] | None:
    """Bootstrap CI of the mean (``scipy.stats.bootstrap``, ``method``, resampling seeded by ``seed``); None for
    fewer than 2 values; (v, v) when all values equal v. BCa falls back to the percentile method if it is
    undefined."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2:
        return None
    if np.all(x == x[0]):
        return float(x[0]), float(x[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BCa on tiny samples warns; a NaN bound falls back below
        for how in dict.fromkeys((method, "percentile")):
            res = stats.bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                                  method=how, rng=np.random.default_rng(seed))
            low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
            if math.isfinite(low) and math.isfinite(high):
                return low, high
    return None


def seeds_needed(difference: float, sd: float, *, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """n = ceil(((z_{1-alpha/2} + z_{power}) * sd / |difference|)^2): paired seeds for a two-sided test at
    ``alpha`` to detect ``difference`` with ``power`` (normal approximation), at least 2; None if there is no
    difference."""
    if not math.isfinite(difference) or not math.isfinite(sd) or difference == 0:
        return None
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return max(2, math.ceil((z * sd / abs(difference)) ** 2))


def paired_verdict(discovered: Sequence[float], baseline: Sequence[float], *, discovered_label: str = "discovered",
                   baseline_label: str = "baseline", confidence: float = CONFIDENCE, alpha: float = 0.05,
                   power: float = 0.8, seed: int = BOOTSTRAP_SEED) -> Verdict:
    """Compare per-seed scores paired by index (seed s of both): the outcome rule of the module docstring."""
    x, y = np.asarray(discovered, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"discovered, baseline: need per-seed scores of equal length, got {x.shape} and {y.shape}")
    labels = {"discovered": discovered_label, "baseline": baseline_label}
    if x.size == 0:
        return Verdict("none", **labels, note="no common seeds to pair the scores on")
    d = x - y
    sd = float(d.std(ddof=1)) if d.size > 1 else math.nan
    numbers = {"n": int(d.size), "difference": float(d.mean()), "sd": sd}
    if d.size < 2:
        return Verdict("tie", **labels, **numbers, note="one seed: no confidence interval; rerun with more seeds")
    boot = mean_ci(d, confidence=confidence, seed=seed)
    half = stats.t.ppf(0.5 + confidence / 2, d.size - 1) * sd / math.sqrt(d.size)
    ci = (min(boot[0], numbers["difference"] - half), max(boot[1], numbers["difference"] + half))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zero variance: NaN p, shown as n/a
        p_paired = float(stats.ttest_rel(x, y).pvalue)
        p_welch = float(stats.ttest_ind(x, y, equal_var=False).pvalue)
    outcome = "win" if ci[0] > 0 else "loss" if ci[1] < 0 else "tie"
    needed = seeds_needed(numbers["difference"], sd, alpha=alpha, power=power)
    note = "" if outcome != "tie" else (f"about {needed} seeds would resolve the observed difference"
                                         if needed else "no difference observed")
    return Verdict(outcome, **labels, **numbers, ci=ci, p_paired=p_paired, p_welch=p_welch, seeds_needed=needed,
                   note=note)


# -- the confirmation run ---------------------------------------------------------------------------------------

def confirm(contenders: Sequence[Contender], fitness: FitnessFn, *, protocol_text: str) -> Confirmation:
    """Train every contender in ONE call of ``fitness`` (common seeds and start states) and compare them.

    Results are sorted by confirmation mean (failed ones last, with their reason); each ok contender other than
    the best baseline is compared with it (:func:`paired_verdict` on their common seeds); the verdict is the
    comparison of the first ok discovered contender in the given order (the search's top-ranked: fixed before
    this confirmation, so not selected on it), or ``none`` saying what is missing."""
    contenders = list(contenders)
    labels = [c.label for c in contenders]
    if len(set(labels)) < len(labels):
        twice = next(label for label in labels if labels.count(label) > 1)
        raise ValueError(f"contenders: label {twice!r} is given twice; each contender needs its own label")
    answers = safe_call(fitness, [c.loss for c in contenders])
    results = sorted((_result(c, a) for c, a in zip(contenders, answers, strict=True)),
                     key=lambda r: (not r.ok, -r.mean if r.ok else 0.0))
    best = {kind: next((r for r in results if r.ok and r.contender.kind == kind), None) for kind in KINDS}
    by_label = {r.contender.label: r for r in results}
    best["discovered"] = next((by_label[c.label] for c in contenders
                               if c.kind == "discovered" and by_label[c.label].ok), None)
    comparisons = {}
    if best["baseline"] is not None:
        for r in results:
            if r.ok and r is not best["baseline"]:
                comparisons[r.contender.label] = _compare(r, best["baseline"])
    verdict = _final_verdict(contenders, results, best, comparisons)
    return Confirmation(tuple(results), comparisons, verdict, protocol_text)


def _result(contender: Contender, answer: FitnessResult) -> ContenderResult:
    if not answer.ok:
        return ContenderResult(contender, reason=answer.reason or "no finite fitness")
    per_seed = answer.per_seed or (answer.mean,)
    seeds = answer.seeds or tuple(range(len(per_seed)))
    x = np.asarray(per_seed, dtype=np.float64)
    std = float(x.std(ddof=1)) if x.size > 1 else math.nan
    return ContenderResult(contender, float(x.mean()), std, mean_ci(x), tuple(seeds), tuple(map(float, x)))


def _compare(result: ContenderResult, baseline: ContenderResult) -> Verdict:
    common = [s for s in result.seeds if s in set(baseline.seeds)]
    x = [result.per_seed[result.seeds.index(s)] for s in common]
    y = [baseline.per_seed[baseline.seeds.index(s)] for s in common]
    return paired_verdict(x, y, discovered_label=result.contender.label, baseline_label=baseline.contender.label)


def _final_verdict(contenders: Sequence[Contender], results: Sequence[ContenderResult],
                   best: Mapping[str, ContenderResult | None], comparisons: Mapping[str, Verdict]) -> Verdict:
    missing = [kind for kind in KINDS if best[kind] is None]
    if not missing:
        return comparisons[best["discovered"].contender.label]
    labels = {kind: (best[kind].contender.label if best[kind] else None) for kind in KINDS}
    kind = missing[0]
    given = sum(c.kind == kind for c in contenders)
    failed = sum(1 for r in results if not r.ok and r.contender.kind == kind)
    if given:
        why = f"{failed} of {given} failed; see the table"
    else:
        why = "none was given" + ("; the run had baselines=none" if kind == "baseline" else "")
    return Verdict("none", labels["discovered"], labels["baseline"],
                   note=f"no {kind} loss was confirmed ({why}): nothing to compare")


def interval_text(ci: tuple[float, float] | None) -> str:
    return "n/a (fewer than 2 seeds)" if ci is None else f"[{ci[0]:.4g}, {ci[1]:.4g}]"


def p_text(p: float) -> str:
    return "n/a" if not math.isfinite(p) else f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"
