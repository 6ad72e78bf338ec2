"""The run directory: checkpoints (JSON, atomic), hall of fame, best loss exports and plots.

Layout of a run directory::

    config.json        the SearchConfig
    checkpoint.json    state after the last completed generation (population as text, RNG, cache, history)
    log.jsonl          one line of metrics per generation
    hall_of_fame.csv   the hall of fame table
    best.json / best.tex / best.py    the best loss (MirrorLoss.to_dict + fitness), LaTeX, Torch source
    fitness.png, pareto.png, mirror.png   best fitness per generation, Pareto front, best m beside DPO's

Nothing here uses pickle or eval: trees are stored in DEAP's prefix text and parsed by symloss.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from symloss.search._config import RESUMABLE_CHANGES, SearchConfig
from symloss.search._evolve import WORST, SearchState
from symloss.search._individual import individual_from_strings

CHECKPOINT_FORMAT = "symloss.search.checkpoint/1"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temporary file and rename it over ``path``: a crash never leaves half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as handle:
        json.dump(data, handle, indent=1, allow_nan=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _rng_to_json(state: Any) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _rng_from_json(data: list) -> tuple:
    version, internal, gauss = data
    return (version, tuple(internal), gauss)


def save_checkpoint(run_dir: Path, state: SearchState) -> None:
    write_json_atomic(run_dir / "checkpoint.json", {
        "format": CHECKPOINT_FORMAT, "generation": state.generation,
        "population": [{"trees": ind.to_strings(), "fitness": list(ind.fitness.values)}
                       for ind in state.population],
        "rng_state": _rng_to_json(state.rng_state), "cache": state.cache, "history": list(state.history),
    })


def load_checkpoint(run_dir: Path, psets: Mapping[str, Any]) -> SearchState:
    path = run_dir / "checkpoint.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"run_dir={str(run_dir)!r}: cannot read checkpoint.json ({exc})") from exc
    if data.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: format {data.get('format')!r}, expected {CHECKPOINT_FORMAT!r}")
    population = []
    for entry in data["population"]:
        ind = individual_from_strings(entry["trees"], psets)
        ind.fitness.values = tuple(entry["fitness"])
        population.append(ind)
    return SearchState(data["generation"], tuple(population), _rng_from_json(data["rng_state"]),
                       data["cache"], tuple(data["history"]))


def check_resume_config(run_dir: Path, config: SearchConfig) -> None:
    """Refuse to resume a run made with another config (other than fields in RESUMABLE_CHANGES)."""
    path = run_dir / "config.json"
    try:
        stored = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"run_dir={str(run_dir)!r}: not a symloss run directory ({exc})") from exc
    current = config.to_dict()
    differences = sorted(k for k in set(stored) | set(current)
                         if k not in RESUMABLE_CHANGES and stored.get(k) != current.get(k))
    if differences:
        details = ", ".join(f"{k}: run has {stored.get(k)!r}, given {current.get(k)!r}" for k in differences)
        raise ValueError(
            f"run_dir={str(run_dir)!r} was made with another config ({details}); resume with the same "
            "settings, or start a new run in another directory. Nothing was overwritten."
        )


def hall_of_fame_table(cache: Mapping[str, Mapping[str, Any]], size: int) -> pd.DataFrame:
    """Valid evaluated candidates, best first: rank, fitness_mean, fitness_std, complexity, slots, key."""
    rows = [{"key": key, "fitness_mean": r["mean"], "fitness_std": r["std"], "complexity": r["complexity"],
             "latex": "; ".join(f"{slot}: {text}" for slot, text in r["latex"].items()),
             "expression": "; ".join(f"{slot}: {text}" for slot, text in r["formulas"].items()),
             "generation": r["generation"], **dict(r["formulas"])}
            for key, r in cache.items() if not r["reason"] and r["mean"] > WORST]
    columns = ["rank", "fitness_mean", "fitness_std", "complexity", "latex", "expression", "key", "generation"]
    if not rows:
        return pd.DataFrame(columns=columns)
    table = pd.DataFrame(rows).sort_values(["fitness_mean", "complexity", "key"], ascending=[False, True, True])
    table = table.head(size).reset_index(drop=True)
    table.insert(0, "rank", range(1, len(table) + 1))
    return table


def pareto_table(cache: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Non-dominated candidates on (fitness max, complexity min), simplest first."""
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
