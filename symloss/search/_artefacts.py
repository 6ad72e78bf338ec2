"""The run directory: its config, hall of fame, best loss exports and plots (checkpoints: ``_checkpoint``).

Layout of a run directory::

    config.json        the SearchConfig
    run.lock           held (flock) by the search using the directory; holds its pid
    checkpoint.json    state after the last completed generation (population as text, RNG, cache, history)
    log.jsonl          one line of metrics per generation
    hall_of_fame.csv   the hall of fame table
    best.json / best.tex / best.py    the best loss (MirrorLoss.to_dict + fitness), LaTeX, Torch source
    fitness.png, pareto.png, mirror.png   best fitness per generation, Pareto front, best m beside DPO's and the
                       best baseline's on the data's u range
    contenders.json    the losses of the held-out confirmation (top discovered, top baselines)
    report.md, confirm.png   the confirmation: table, paired test, verdict; per-seed scores and intervals
    report-<tag>.md    each later ``symloss confirm`` (never overwriting)

Nothing here uses pickle or eval: trees are stored in DEAP's prefix text and parsed by symloss.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from symloss.search._config import RESUMABLE_CHANGES, SearchConfig
from symloss.search._evolve import WORST
from symloss.search._rundir import RunDirError
from symloss.train import STORED_BEFORE
from symloss.validation import short_repr


def read_config(run_dir: Path) -> dict[str, Any]:
    """The JSON object in ``run_dir/config.json`` (RunDirError if there is none or it is not an object); a
    protocol field the file lacks (written before the field existed) is filled in from ``STORED_BEFORE``."""
    path = run_dir / "config.json"
    try:
        stored = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise RunDirError(f"run_dir={str(run_dir)!r}: not a symloss run directory ({type(exc).__name__}: "
                          f"{exc})") from None
    if not isinstance(stored, dict):
        raise RunDirError(f"{path}: holds a JSON {type(stored).__name__}, not a SearchConfig object; fix the "
                          "file, or start a new run in another directory")
    train = stored["train"] if isinstance(stored.get("train"), dict) else {}  # the protocol's fields
    for name, value in [*stored.items(), *train.items()]:
        if not isinstance(name, str) or not _FIELD_NAME.fullmatch(name):
            raise RunDirError(f"{path}: field name {short_repr(name)} is not a SearchConfig field name; fix the "
                              "file, or start a new run in another directory")
        if value is not train and not all(_config_scalar(v) for v in (value if isinstance(value, list) else [value])):
            raise RunDirError(f"{path}: {short_repr(name)}={short_repr(value)}: must be a number, a text of at "
                              f"most {MAX_CONFIG_TEXT} characters, or a list of them; fix the file, or start a new "
                              "run in another directory")
    protocol = stored["train"] if isinstance(stored.get("train"), dict) else stored
    for name, value in STORED_BEFORE.items():  # written before the field existed: the value it was run with
        protocol.setdefault(name, value)
    return stored


_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
MAX_CONFIG_TEXT = 4096
"""Longest text value accepted in config.json (a path at most)."""


def _config_scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float) or isinstance(value, str) and len(value) <= MAX_CONFIG_TEXT


def check_resume_config(run_dir: Path, config: SearchConfig) -> None:
    """Refuse to resume a run made with another config (other than fields in RESUMABLE_CHANGES). The stored
    config is read as ``SearchConfig.from_dict`` does (a config.json of an older version, without ``train``
    or newer fields, compares equal to the same settings), and protocol fields compare one by one."""
    current = config.flat()
    stored = SearchConfig.from_dict({**read_config(run_dir), **{k: current[k] for k in RESUMABLE_CHANGES}}).flat()
    differences = sorted(k for k in set(stored) | set(current)
                         if k not in RESUMABLE_CHANGES and stored.get(k) != current.get(k))
    if differences:
        details = ", ".join(f"{k}: run has {short_repr(stored.get(k))}, given {short_repr(current.get(k))}"
                            for k in differences[:5])
        raise RunDirError(
            f"run_dir={str(run_dir)!r} was made with another config ({details}); resume with the same "
            "settings, or start a new run in another directory. Nothing was overwritten."
        )


HOF_COLUMNS = ["rank", "kind", "name", "rung", "fitness_mean", "fitness_std", "seeds", "ci_low", "ci_high",
               "complexity", "family", "forms", "latex", "expression", "key", "generation"]
"""Columns of the hall of fame, then one column per slot."""


def interval(per_seed: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """Student-t confidence interval of the mean of per-seed scores (NaN with fewer than 2 seeds)."""
    import numpy as np
    from scipy import stats

    values = np.asarray(per_seed, dtype=float)
    if values.size < 2:
        return math.nan, math.nan
    half = stats.t.ppf(0.5 + confidence / 2, values.size - 1) * values.std(ddof=1) / math.sqrt(values.size)
    return float(values.mean() - half), float(values.mean() + half)


def _row(key: str, r: Mapping[str, Any]) -> dict[str, Any]:
    top = r.get("rungs", {}).get(str(r.get("rung", 0)), {})
    low, high = interval(top.get("per_seed", []))
    forms = [r["formulas"], *(a["formulas"] for a in r.get("aliases", []))]
    simplest = min([(r["complexity"], r["formulas"], r["latex"]),
                    *((a["complexity"], a["formulas"], a["latex"]) for a in r.get("aliases", []))],
                   key=lambda item: item[0])
    kind = r.get("kind", "discovered")
    shown_formulas, shown_latex = (r["formulas"], r["latex"]) if kind == "baseline" else simplest[1:]
    return {"key": key, "kind": kind, "name": r.get("name", ""), "rung": r.get("rung", 0),
            "fitness_mean": r["mean"], "fitness_std": r["std"], "seeds": len(top.get("seeds", [])),
            "ci_low": low, "ci_high": high, "complexity": min(r["complexity"], simplest[0]),
            "family": r.get("family", ""), "forms": len(forms),
            "latex": "; ".join(f"{slot}: {text}" for slot, text in shown_latex.items()),
            "expression": "; ".join(f"{slot}: {text}" for slot, text in shown_formulas.items()),
            "generation": r["generation"], **({} if kind == "baseline" else dict(r["formulas"]))}


def hall_of_fame_table(cache: Mapping[str, Mapping[str, Any]], size: int, *, baselines: int = 0) -> pd.DataFrame:
    """Valid evaluated losses, best first: the ``size`` best discovered ones and the ``baselines`` best baselines,
    ranked together by the highest rung reached, then the mean there (then the simplest). Equivalent forms
    (``aliases``) are one row whose ``expression`` shows the simplest form and ``forms`` counts them; the slot
    columns hold the form that was trained and scored (what :meth:`LossSearch.loss` and best.json give)."""
    rows = [_row(key, r) for key, r in cache.items() if not r["reason"] and r["mean"] > WORST]
    if not rows:
        return pd.DataFrame(columns=HOF_COLUMNS)
    table = pd.DataFrame(rows).sort_values(["rung", "fitness_mean", "complexity", "key"],
                                           ascending=[False, False, True, True])
    table = pd.concat([table[table["kind"] == "discovered"].head(size),
                       table[table["kind"] == "baseline"].head(baselines)])
    table = table.sort_values(["rung", "fitness_mean", "complexity", "key"],
                              ascending=[False, False, True, True]).reset_index(drop=True)
    table.insert(0, "rank", range(1, len(table) + 1))
    return table[[*HOF_COLUMNS, *[c for c in table.columns if c not in HOF_COLUMNS]]]


def pareto_table(cache: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Non-dominated discovered losses on (fitness max, complexity min), simplest first."""
    table = hall_of_fame_table(cache, size=len(cache) or 1)
    if table.empty:
        return table
    table = table.sort_values(["complexity", "fitness_mean"], ascending=[True, False])
    best, keep = -float("inf"), []
    for idx, row in table.iterrows():
        if row["fitness_mean"] > best:
            keep.append(idx)
            best = row["fitness_mean"]
    return table.loc[keep].reset_index(drop=True)
