"""The confirmation's report: ``report.md`` (setting, table, one verdict line, power note) and ``confirm.png``.

Nothing is overwritten: :func:`report_paths` picks ``report.md`` / ``confirm.png`` (or ``report-<tag>.md`` /
``confirm-<tag>.png``), adding ``-2``, ``-3``, ... while either exists, and files are created exclusively. The
plot is drawn on a bare :class:`matplotlib.figure.Figure` with the Agg canvas (no pyplot, no global state).
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import numpy as np

from symloss.search._config import SearchConfig
from symloss.search._confirm import (
    CONFIDENCE,
    Confirmation,
    ContenderResult,
    Verdict,
    interval_text,
    p_text,
    seeds_needed,
)
from symloss.train import TrainConfig

TABLE_COLUMNS = ("loss", "kind", "search fitness (not a result)", "confirmation mean", "std",
                 f"{CONFIDENCE:.0%} CI", "difference vs best baseline [CI]", "paired p")
"""Columns of the report's table (one row per contender, best confirmation mean first)."""


def confirm_tag(env: str, dataset: str, protocol: TrainConfig) -> str:
    """``<env>-<dataset>-seeds<first>-<last>``: names the report of ``symloss confirm``."""
    tag = f"{env}-{dataset}-seeds{protocol.first_seed}-{protocol.first_seed + protocol.seeds - 1}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", tag)


def report_paths(run_dir: Path, tag: str | None = None) -> tuple[Path, Path]:
    """The first free (report, plot) pair: ``report[-tag][-k].md`` and ``confirm[-tag][-k].png``, k = 2, 3, ..."""
    stem = "" if tag is None else f"-{tag}"
    for k in itertools.count(1):
        suffix = stem + ("" if k == 1 else f"-{k}")
        report, plot = run_dir / f"report{suffix}.md", run_dir / f"confirm{suffix}.png"
        if not report.exists() and not plot.exists() and not report.with_suffix(".json").exists():
            return report, plot
    raise AssertionError("unreachable")  # pragma: no cover


def table_rows(confirmation: Confirmation) -> list[list[str]]:
    """The report's table as text cells, columns :data:`TABLE_COLUMNS`."""
    rows = []
    best = confirmation.best("baseline")
    for r in confirmation.results:
        c = r.contender
        search = _search_fitness(r)
        if not r.ok:
            rows.append([c.label, c.kind, search, f"failed: {r.reason}", "", "", "", ""])
            continue
        comparison = confirmation.comparisons.get(c.label)
        if r is best:
            diff, p = "(the best baseline)", ""
        elif comparison is None:
            diff, p = "n/a (no baseline)", ""
        else:
            diff, p = f"{comparison.difference:+.4g} {interval_text(comparison.ci)}", p_text(comparison.p_paired)
        std = "n/a" if not math.isfinite(r.std) else f"{r.std:.3g}"
        rows.append([c.label, c.kind, search, f"{r.mean:.4g}", std, interval_text(r.ci), diff, p])
    return rows


def _search_fitness(result: ContenderResult) -> str:
    """``mean ± std (rung r, n seeds)`` of the search, or n/a."""
    c = result.contender
    if c.mean is None:
        return "n/a"
    where = [f"rung {c.rung}"] if c.rung is not None else []
    where += [f"{len(c.seeds)} seeds"] if c.seeds else []
    return (f"{c.mean:.4g}" + ("" if c.std is None else f" ± {c.std:.3g}") +
            (f" ({', '.join(where)})" if where else ""))


def markdown_table(confirmation: Confirmation) -> str:
    """The table of :func:`table_rows` in Markdown (``|`` in labels escaped)."""
    lines = ["| " + " | ".join(TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
    for row in table_rows(confirmation):
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return "\n".join(lines)


def power_note(verdict: Verdict) -> str:
    """How many seeds the observed difference needs (the formula is stated)."""
    formula = "n = ceil(((z_0.975 + z_0.8) * sd(d) / |mean(d)|)^2), a two-sided paired test at alpha 0.05 with " \
              "power 0.8 (normal approximation)"
    if verdict.outcome == "none" or verdict.n < 2:
        return f"Power: not computed ({verdict.note or 'fewer than 2 paired seeds'}). Formula: {formula}."
    if verdict.seeds_needed is None:
        return f"Power: the observed mean difference is 0; no number of seeds resolves it. Formula: {formula}."
    return (f"Power: the observed difference {verdict.difference:+.4g} with sd(d) = {verdict.sd:.4g} over "
            f"{verdict.n} seeds needs about {verdict.seeds_needed} seeds to be resolved: {formula}.")


def _stream(protocol: TrainConfig) -> str:
    """How the protocol draws minibatches, in words."""
    return "minibatches in shuffled epochs" if protocol.sampling == "epochs" else "minibatches drawn with replacement"


def _scored(protocol: TrainConfig) -> str:
    """Which weights the protocol scores, in words: the last or averaged weights, at one or K late checkpoints."""
    weights = "the last weights" if protocol.ema is None else f"the averaged weights (ema {protocol.ema:g})"
    if protocol.checkpoints > 1:
        weights += f", mean over {protocol.checkpoints} checkpoints at steps " + ", ".join(
            str(k) for k in protocol.checkpoint_steps)
    return weights + ("" if protocol.soup == 1 else f", seed soups of {protocol.soup}")


def _setting(config: SearchConfig, confirmation: Confirmation) -> list[str]:
    protocol = config.confirmation_protocol()
    seeds = protocol.seed_list
    states = protocol.start_state_seeds
    starts = f"reset(seed={states.start})" + ("" if len(states) == 1 else f" .. reset(seed={states.stop - 1})")
    data = f"{config.env}/{config.dataset}" + ("" if config.n_pairs is None else f" (n_pairs={config.n_pairs})")
    return [
        f"- Benchmark: {data}; protocol `{confirmation.protocol_text}`: {protocol.steps} steps x "
        f"{protocol.batch_size} pairs at lr {protocol.lr:g} ({_stream(protocol)}), fitness `{protocol.fitness}` "
        f"with `{protocol.action}` actions of {_scored(protocol)}.",
        f"- Training seeds {seeds[0]}..{seeds[-1]} ({len(seeds)}), evaluation episodes from {starts} "
        + (f"({protocol.episodes} per policy), the same for every loss (paired)." if protocol.start_states == "shared"
           else f"({protocol.episodes} per policy, a block of its own for each training seed: reset(seed=eval_seed + "
                f"{protocol.episodes} s + e) for seed s), every loss on the same block for a common seed (paired).")
        + ("" if protocol.horizon is None else f" Each episode is scored on its first {protocol.horizon} steps."),
        "- Held out: none of these seeds or start states was used by any rung of the search (the search's config "
        "refuses a confirmation protocol that overlaps a rung).",
        "- The verdict compares the search's top-ranked discovered loss (fixed before this confirmation, so not "
        "selected on it) with the best baseline, the one with the highest confirmation mean (chosen on the data "
        "it is compared on, which favours the baseline): a WIN is a conservative claim. The CI of the paired "
        "difference is the hull of the bootstrap (BCa) and Student-t intervals.",
        "- Search fitness is the score that selected a loss (biased upwards by the selection): shown for "
        "reference, not a result.",
    ]


def write_report(run_dir: Path | str, confirmation: Confirmation, *, config: SearchConfig, tag: str | None = None,
                 title: str | None = None, reference: float | None = None) -> Path:
    """Write the report and its plot into ``run_dir`` (never overwriting, see :func:`report_paths`); its path.

    ``config`` gives the setting: env, dataset and the confirmation protocol (``config.confirmation_protocol()``,
    whose spec is ``confirmation.protocol_text``); ``reference``: the untrained SFT reference's mean return on the
    same start states (the bar that not training at all sets), shown under the table when given."""
    run_dir = Path(run_dir)
    report, plot = report_paths(run_dir, tag)
    drawn = plot_confirmation(confirmation, plot)
    verdict = confirmation.verdict
    lines = [f"# {title or 'Held-out confirmation'}", "", *_setting(config, confirmation), "",
             markdown_table(confirmation), ""]
    if reference is not None and math.isfinite(reference):
        lines += [f"The SFT reference without any training scores {reference:.4g} on the same start states.", ""]
    lines += [verdict.line(), ""]
    if verdict.outcome != "none" and verdict.n >= 2:
        lines += [f"Welch's unpaired t-test p = {p_text(verdict.p_welch)} for reference; sd of the paired differences "
                  f"{verdict.sd:.4g}.", ""]
    lines += [power_note(verdict), ""]
    baseline = confirmation.best("baseline")
    if verdict.outcome != "none" and verdict.n >= 2 and baseline is not None and math.isfinite(verdict.sd):
        ten = seeds_needed(0.1 * abs(baseline.mean), verdict.sd)
        lines += [f"A 10% difference ({0.1 * abs(baseline.mean):.4g}) at this sd(d) would need about {ten} paired "
                  "seeds.", ""]
    if verdict.outcome == "tie" and verdict.seeds_needed:
        where = f" --env {config.env} --dataset {config.dataset}"  # a transfer check keeps its data
        lines += [f"To resolve it: `symloss confirm {run_dir}{where} --seeds {verdict.seeds_needed}` (another "
                  "report, same contenders, more held-out seeds).", ""]
    if drawn:
        lines += [f"![per-seed scores and {CONFIDENCE:.0%} CIs]({plot.name})", ""]
    with report.open("x", encoding="utf-8") as handle:
        handle.write("\n".join(lines))
    write_numbers(report.with_suffix(".json"), confirmation, reference)
    return report


def write_numbers(path: Path, confirmation: Confirmation, reference: float | None = None) -> None:
    """The report's numbers as JSON beside it (per-seed scores, the verdict): reanalysis needs no retraining."""
    import json

    v = confirmation.verdict
    data = {"protocol": confirmation.protocol_text, "reference": reference,
            "results": [{"label": r.contender.label, "kind": r.contender.kind, "mean": r.mean, "std": r.std,
                         "ci": list(r.ci) if r.ci else None, "seeds": list(r.seeds), "per_seed": list(r.per_seed),
                         "reason": r.reason} for r in confirmation.results],
            "verdict": {"outcome": v.outcome, "discovered": v.discovered, "baseline": v.baseline, "n": v.n,
                        "difference": v.difference, "sd": v.sd, "ci": list(v.ci) if v.ci else None,
                        "p_paired": v.p_paired, "p_welch": v.p_welch, "seeds_needed": v.seeds_needed,
                        "line": v.line()}}
    with path.open("x", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, allow_nan=True)


def plot_confirmation(confirmation: Confirmation, path: Path) -> bool:
    """Per-seed scores (points) and the CI of the mean (bar) per ok loss, on the data's range; False if none."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    results: list[ContenderResult] = [r for r in confirmation.results if r.ok]
    if not results:
        return False
    fig = Figure(figsize=(7.5, 1.2 + 0.45 * len(results)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    jitter = np.random.default_rng(0)
    for i, r in enumerate(reversed(results)):  # best at the top
        color = "C0" if r.contender.kind == "discovered" else "C1"
        ax.scatter(r.per_seed, i + jitter.uniform(-0.15, 0.15, len(r.per_seed)), s=12, alpha=0.6, color=color)
        low, high = r.ci if r.ci is not None else (r.mean, r.mean)
        ax.errorbar([r.mean], [i], xerr=[[r.mean - low], [high - r.mean]], fmt="D", color="black", capsize=4)
    values = np.concatenate([np.asarray(r.per_seed) for r in results])
    lo, hi = float(values.min()), float(values.max())
    pad = 0.05 * (hi - lo) if hi > lo else max(abs(lo) * 0.05, 1.0)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_yticks(range(len(results)))
    ax.set_yticklabels([_short(r.contender.label) for r in reversed(results)], fontsize=7)
    ax.set_xlabel(f"score per seed; diamond: mean, bar: {CONFIDENCE:.0%} bootstrap CI\n(blue: discovered, "
                  "orange: baseline)", fontsize=7)
    fig.tight_layout()
    with path.open("xb") as handle:
        fig.savefig(handle, format="png", dpi=120)
    return True


def _short(label: str, limit: int = 40) -> str:
    return label if len(label) <= limit else label[: limit - 3] + "..."
