"""The search's checkpoint: ``checkpoint.json``, written atomically, read back with every field validated.

Format ``symloss.search.checkpoint/2``::

    {"format": ..., "generation": g >= 0,
     "population": [{"trees": {slot: DEAP prefix text}, "fitness": [score, complexity]}, ...],
     "rng_state": [3, [625 ints], null],           # the search's own random.Random
     "u_ranges": {slot: [low, high]},               # the data's u ranges the validity checks use
     "data_ranges": {slot: [low, high]},            # where the data lies (not widened): semantic dedup
     "cache": {key: {"mean", "std", "reason", "complexity", "generation", "formulas", "latex",
                     optional: "kind", "name", "rung", "rungs": {r: {"mean", "std", "seeds", "per_seed", "reason"}},
                     "loss" (a baseline's MirrorLoss dict), "aliases", "family"}},
     "history": [{metric: number}, ...]}

Format ``/1`` (before the search held its own generator) stored the same RNG state, taken from the global
``random`` module, and no ``u_ranges`` (its checks used the fixed default range): it loads as such. Nothing
is evaluated: trees are parsed by :func:`tree_from_string`, formulas by symloss's grammar, and anything
else that is not of the stated type and range raises :class:`CheckpointError` naming the field.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from symloss.expr import parse_formula
from symloss.objectives import SLOT_SPECS
from symloss.search._evolve import SearchState
from symloss.search._individual import individual_from_strings
from symloss.search._rundir import RunDirError
from symloss.validation import short_repr

CHECKPOINT_FORMAT = "symloss.search.checkpoint/2"
OLD_FORMATS = ("symloss.search.checkpoint/1",)
MAX_TREE_TEXT = 100_000
"""Longest tree text accepted from a checkpoint (formulas have the grammar's own limit)."""
_KEY = re.compile(r"[a-z_]+:[0-9a-f]{1,64}(\|[a-z_]+:[0-9a-f]{1,64})*")


class CheckpointError(RunDirError):
    """``checkpoint.json`` is not a checkpoint this version wrote: a field is missing, mistyped or out of range."""


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temporary file and rename it over ``path``: a crash never leaves half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as handle:
        json.dump(data, handle, indent=1, allow_nan=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def save_checkpoint(run_dir: Path, state: SearchState) -> None:
    version, internal, gauss = state.rng_state
    write_json_atomic(run_dir / "checkpoint.json", {
        "format": CHECKPOINT_FORMAT, "generation": state.generation,
        "population": [{"trees": ind.to_strings(), "fitness": list(ind.fitness.values), "key": ind.key}
                       for ind in state.population],
        "rng_state": [version, list(internal), gauss],
        "u_ranges": {slot: list(r) for slot, r in state.u_ranges.items()},
        "data_ranges": {slot: list(r) for slot, r in state.data_ranges.items()},
        "es": state.es,
        "cache": state.cache, "history": list(state.history),
    })


def load_checkpoint(run_dir: Path, psets: Mapping[str, Any]) -> SearchState:
    """The :class:`SearchState` stored in ``run_dir/checkpoint.json``; CheckpointError if it is not valid."""
    path = run_dir / "checkpoint.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{path}: cannot read it ({type(exc).__name__}: {exc}); {_FIX}") from exc
    return _Reader(path, psets).state(data)


_FIX = "restore the file from a copy, or start a new run in another directory"


class _Reader:
    """Validates one checkpoint's JSON, field by field, into a SearchState."""

    def __init__(self, path: Path, psets: Mapping[str, Any]) -> None:
        self.path, self.psets = path, psets

    def fail(self, where: str, value: Any, expected: str) -> CheckpointError:
        return CheckpointError(f"{self.path}: {where}={short_repr(value)}: must be {expected}; {_FIX}")

    def field(self, data: Mapping[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
        if name not in data:
            raise CheckpointError(f"{self.path}: {where} has no {name!r}; {_FIX}")
        value = data[name]
        if not isinstance(value, kind) or isinstance(value, bool) and bool not in _as_tuple(kind):
            raise self.fail(f"{where}.{name}", value, _kind_name(kind))
        return value

    def number(self, value: Any, where: str, *, finite: bool = True) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or finite and not math.isfinite(value):
            raise self.fail(where, value, "a finite number" if finite else "a number")
        return float(value)

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or len(value) > MAX_TREE_TEXT:
            raise self.fail(where, value, f"a text of at most {MAX_TREE_TEXT} characters")
        return value

    def state(self, data: Any) -> SearchState:
        if not isinstance(data, dict):
            raise self.fail("checkpoint", data, "a JSON object")
        fmt = data.get("format")
        if fmt != CHECKPOINT_FORMAT and fmt not in OLD_FORMATS:
            raise self.fail("format", fmt, f"one of {[CHECKPOINT_FORMAT, *OLD_FORMATS]}")
        generation = self.field(data, "generation", int, "checkpoint")
        if generation < 0:
            raise self.fail("generation", generation, "an integer >= 0")
        population = tuple(self.individual(entry, f"population[{i}]")
                           for i, entry in enumerate(self.field(data, "population", list, "checkpoint")))
        u_ranges = self.u_ranges(data.get("u_ranges", {})) if fmt == CHECKPOINT_FORMAT else {}
        data_ranges = self.u_ranges(data.get("data_ranges", {}), "data_ranges") if fmt == CHECKPOINT_FORMAT else {}
        cache = self.field(data, "cache", dict, "checkpoint")
        for key, record in cache.items():
            self.record(key, record)
        history = self.field(data, "history", list, "checkpoint")
        for i, metrics in enumerate(history):
            self.metrics(metrics, f"history[{i}]")
        es = data.get("es")
        if es is not None:
            from symloss.search._es import state_from_json

            try:
                state_from_json(es)
            except ValueError as exc:
                raise CheckpointError(f"{self.path}: es: {exc}; {_FIX}") from None
        return SearchState(generation, population, self.rng_state(data.get("rng_state")), cache, tuple(history),
                           u_ranges, data_ranges, es)

    def individual(self, entry: Any, where: str) -> Any:
        if not isinstance(entry, dict):
            raise self.fail(where, entry, "an object with 'trees' and 'fitness'")
        trees = self.field(entry, "trees", dict, where)
        if set(trees) != set(self.psets):
            raise self.fail(f"{where}.trees", sorted(trees), f"one tree for each of {sorted(self.psets)}")
        for slot, text in trees.items():
            self.text(text, f"{where}.trees.{slot}")
        try:
            ind = individual_from_strings(trees, self.psets)
        except (ValueError, RecursionError) as exc:
            raise CheckpointError(f"{self.path}: {where}.trees: {exc}; {_FIX}") from None
        fitness = self.field(entry, "fitness", list, where)
        if len(fitness) != 2:
            raise self.fail(f"{where}.fitness", fitness, "[score, complexity]")
        ind.fitness.values = tuple(self.number(v, f"{where}.fitness") for v in fitness)
        key = entry.get("key", "")
        if not isinstance(key, str) or key and not _KEY.fullmatch(key):
            raise self.fail(f"{where}.key", key, "a canonical key or ''")
        ind.key = key
        return ind

    def rng_state(self, value: Any) -> tuple:
        where, expected = "rng_state", "[3, [625 integers in [0, 2^32), the last <= 624], null or a number]"
        if not isinstance(value, list) or len(value) != 3 or value[0] != 3 or not isinstance(value[1], list):
            raise self.fail(where, value, expected)
        internal = value[1]
        if len(internal) != 625 or any(isinstance(x, bool) or not isinstance(x, int) or not 0 <= x < 2**32
                                       for x in internal) or internal[-1] > 624:
            raise self.fail(where, value, expected)
        gauss = value[2] if value[2] is None else self.number(value[2], f"{where}[2]")
        return (3, tuple(internal), gauss)

    def u_ranges(self, value: Any, name: str = "u_ranges") -> dict[str, tuple[float, float]]:
        if not isinstance(value, dict):
            raise self.fail(name, value, "an object {slot: [low, high]}")
        out = {}
        for slot, pair in value.items():
            if slot not in SLOT_SPECS or not isinstance(pair, list) or len(pair) != 2:
                raise self.fail(f"{name}.{slot}", pair, "[low, high] for a slot")
            low, high = (self.number(v, f"{name}.{slot}") for v in pair)
            if not low < high <= 0:
                raise self.fail(f"{name}.{slot}", pair, "[low, high] with low < high <= 0")
            out[slot] = (low, high)
        return out

    def record(self, key: Any, record: Any) -> None:
        where = f"cache[{key!r}]" if len(str(key)) <= 60 else "cache[...]"
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise self.fail("cache key", key, "a canonical key such as 'mirror:0123456789abcdef'")
        if not isinstance(record, dict):
            raise self.fail(where, record, "an object")
        for name in ("mean", "std"):
            self.number(self.field(record, name, (int, float), where), f"{where}.{name}", finite=False)
        self.field(record, "reason", str, where)
        for name in ("complexity", "generation"):
            if self.field(record, name, int, where) < 0:
                raise self.fail(f"{where}.{name}", record[name], "an integer >= 0")
        self.formulas(record, where)
        self.optional(record, where)

    def formulas(self, record: Mapping[str, Any], where: str) -> None:
        formulas = self.field(record, "formulas", dict, where)
        latex = self.field(record, "latex", dict, where)
        if set(latex) != set(formulas) or not set(formulas) <= set(SLOT_SPECS):
            raise self.fail(f"{where}.formulas", sorted(formulas), f"slots among {sorted(SLOT_SPECS)} (as latex)")
        for slot in formulas:
            self.field(latex, slot, str, f"{where}.latex")
            try:
                parse_formula(self.field(formulas, slot, str, f"{where}.formulas"), SLOT_SPECS[slot],
                              field=f"{where}.formulas.{slot}")
            except (ValueError, RecursionError) as exc:
                raise CheckpointError(f"{self.path}: {exc}; {_FIX}") from None

    def optional(self, record: Mapping[str, Any], where: str) -> None:
        """The fields of the multi-fidelity search (absent in runs of earlier versions)."""
        if record.get("kind", "discovered") not in ("discovered", "baseline"):
            raise self.fail(f"{where}.kind", record["kind"], "'discovered' or 'baseline'")
        for name in ("name", "family"):
            if name in record and (not isinstance(record[name], str) or len(record[name]) > 300):
                raise self.fail(f"{where}.{name}", record[name], "a text of at most 300 characters")
        if "select" in record:
            self.number(record["select"], f"{where}.select", finite=False)
        if "rung" in record and (isinstance(record["rung"], bool) or not isinstance(record["rung"], int)
                                 or record["rung"] < 0):
            raise self.fail(f"{where}.rung", record["rung"], "an integer >= 0")
        rungs = record.get("rungs", {})
        if not isinstance(rungs, dict):
            raise self.fail(f"{where}.rungs", rungs, "an object {rung: result}")
        for rung, entry in rungs.items():
            at = f"{where}.rungs[{rung!r}]"
            if not isinstance(rung, str) or not rung.isdigit() or len(rung) > 3 or not isinstance(entry, dict):
                raise self.fail(at, entry, "an object keyed by a rung number")
            for name in ("mean", "std"):
                self.number(self.field(entry, name, (int, float), at), f"{at}.{name}", finite=False)
            seeds = self.field(entry, "seeds", list, at)
            per_seed = self.field(entry, "per_seed", list, at)
            if any(isinstance(v, bool) or not isinstance(v, int) for v in seeds) or len(per_seed) > len(seeds):
                raise self.fail(f"{at}.seeds", seeds, "a list of integer seeds, one per per_seed score")
            for v in per_seed:
                self.number(v, f"{at}.per_seed", finite=False)
            self.field(entry, "reason", str, at)
        if "loss" in record:
            from symloss.objectives import MirrorLoss

            try:
                MirrorLoss.from_dict(self.field(record, "loss", dict, where))
            except (ValueError, TypeError, KeyError, RecursionError) as exc:
                raise CheckpointError(f"{self.path}: {where}.loss: {exc}; {_FIX}") from None
        if "signature" in record:
            from symloss.search._dedup import Signature

            try:
                Signature.from_json(record["signature"])
            except ValueError as exc:
                raise CheckpointError(f"{self.path}: {where}.signature: {exc}; {_FIX}") from None
        aliases = record.get("aliases", [])
        if not isinstance(aliases, list):
            raise self.fail(f"{where}.aliases", aliases, "a list of equivalent forms")
        for i, alias in enumerate(aliases):
            at = f"{where}.aliases[{i}]"
            if not isinstance(alias, dict) or not isinstance(alias.get("key"), str) or not _KEY.fullmatch(alias["key"]):
                raise self.fail(at, alias, "an object with a canonical 'key', 'complexity', 'formulas', 'latex'")
            self.field(alias, "complexity", int, at)
            self.formulas(alias, at)

    def metrics(self, metrics: Any, where: str) -> None:
        if not isinstance(metrics, dict) or not metrics:
            raise self.fail(where, metrics, "an object of metrics")
        for name, value in metrics.items():
            if not isinstance(name, str) or len(name) > 40:
                raise self.fail(f"{where} key", name, "a metric name")
            self.number(value, f"{where}.{name}", finite=False)


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a text", list: "a JSON list", dict: "a JSON object"}
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in _as_tuple(kind)))
