"""LossSearch: the estimator that evolves MPO losses and hands back closed-form formulas.

Read top to bottom, one generation is::

    candidates, state = ask(state, ops)                   # offspring, checked and canonically keyed
    pending = new valid keys (not in the fitness cache)
    results = fitness([loss of each pending key])         # ONE batched job
    state, metrics = tell(state, candidates, results)     # fitness, cache, survivors
    checkpoint(state)                                     # kill -9 loses at most this generation

The fitness is the user's, or by default :class:`symloss.train.BenchmarkFitness`: every pending loss x the
protocol's seeds (``config.train``) trained at once on the benchmark dataset and scored there.

Before anything is written, everything cheap is checked (config, primitives, base loss, env and dataset
names, the device); then the run directory is locked for the whole fit (one search per directory) and
probed for writability, so a bad option or a read-only directory fails at once and leaves nothing behind
that blocks the next try.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import sympy as sp

from symloss.expr import parse_formula, stabilise
from symloss.objectives import SLOT_SPECS, MirrorLoss
from symloss.search import _artefacts as art
from symloss.search import _rundir
from symloss.search._baselines import baselines
from symloss.search._checkpoint import load_checkpoint, save_checkpoint, write_json_atomic
from symloss.search._config import RESUMABLE_CHANGES, SearchConfig
from symloss.search._evolve import (
    U_RANGE_SLOTS,
    Operators,
    SearchState,
    ask,
    base_loss,
    build_operators,
    initial_state,
    tell,
)
from symloss.search._fitness import WORST, FitnessFn, FitnessResult, benchmark_fitness
from symloss.search._multifidelity import Ladder, baseline_records, loss_name, loss_of, promote, top_records
from symloss.search._plots import plot_fitness, plot_mirror, plot_pareto
from symloss.search._progress import progress_display
from symloss.search._ray import RayFitness
from symloss.search._rundir import RunDirError
from symloss.search._semantic import SemanticIndex

logger = logging.getLogger(__name__)


class LossSearch:
    """Genetic-programming search for MPO losses (``fit`` returns ``self``; results end in ``_``).

    Args:
        config: a :class:`SearchConfig`; or give its fields, and TrainConfig fields overriding the protocol's
            (``steps=50``), as keyword arguments instead.
        fitness: a callable ``losses -> [FitnessResult | float]`` (or a ``PopulationResult``) scoring a whole
            generation at once; None: :class:`symloss.train.BenchmarkFitness` with ``config.train`` (a name,
            ``"return"`` or ``"offline"``, sets ``config.train.fitness``).
        progress: show a live progress display.

    Fitted attributes: ``hall_of_fame_`` (DataFrame: rank, fitness_mean, fitness_std, complexity, latex,
    expression, key, generation, and one column per evolved slot), ``best_`` (a MirrorLoss),
    ``pareto_`` (fitness vs complexity front), ``history_`` (metrics per generation), ``state_``.
    """

    def __init__(self, config: SearchConfig | None = None, *, fitness: FitnessFn | None = None,
                 progress: bool = True, **kwargs: Any) -> None:
        if isinstance(fitness, str):  # a built-in fitness by name is the protocol's field (fitness="offline")
            kwargs, fitness = {**kwargs, "fitness": fitness}, None
        if config is not None and kwargs:
            raise ValueError(f"give either config= or SearchConfig fields, not both (got {sorted(kwargs)})")
        self.config = config if config is not None else SearchConfig.from_dict(kwargs)
        if fitness is not None and not callable(fitness):
            raise ValueError(f"fitness={fitness!r}: must be callable (losses -> results) or None")
        self.fitness = fitness
        self.progress = progress
        self._resume = False

    @classmethod
    def resume(cls, run_dir: str | Path, *, fitness: FitnessFn | None = None, progress: bool = True,
               **changes: Any) -> LossSearch:
        """A search continuing the run in ``run_dir``; only fields in RESUMABLE_CHANGES may change.

        Raises :class:`RunDirError` if ``run_dir`` holds no valid config.json; its ``fit`` raises
        :class:`RunDirLocked` while another search uses the directory, :class:`RunDirError` if it cannot
        write there, and :class:`CheckpointError` for a checkpoint.json this version did not write, each
        before any training.
        """
        run_dir = Path(run_dir)
        stored = art.read_config(run_dir)
        bad = sorted(set(changes) - RESUMABLE_CHANGES)
        if bad:
            raise ValueError(f"resume: cannot change {bad}; only {sorted(RESUMABLE_CHANGES)} may change")
        try:
            config = SearchConfig.from_dict({**stored, **changes, "run_dir": str(run_dir)})
        except (TypeError, ValueError) as exc:
            why = str(exc) if len(str(exc)) <= 300 else str(exc)[:297] + "..."
            raise RunDirError(f"{run_dir / 'config.json'}: not a valid SearchConfig ({why}); fix the file, or "
                              "start a new run in another directory") from None
        search = cls(config, fitness=fitness, progress=progress)
        search._resume = True
        return search

    # -- fitting --------------------------------------------------------------------------------------------

    def fit(self) -> LossSearch:
        """Run the search (or continue it, after :meth:`resume`) and set the fitted attributes."""
        config = self.config
        ops = build_operators(config)  # primitives, base loss: checked before anything is written
        fitness = self._fitness_fn()
        validate = getattr(fitness, "validate", None)
        if callable(validate):
            validate()  # env and dataset names (the device is checked by the protocol, a TrainConfig)
        self.confirmation_ = None
        with self._run_dir() as run_dir:
            state = self._initial_state(ops, run_dir)
            prepare = getattr(fitness, "prepare", None)
            if callable(prepare) and (state.generation < config.generations or config.confirm):
                prepare()  # dataset, reference: before the live display, with their own progress output
            if state.generation < 0:
                state = replace(state, u_ranges=_data_u_ranges(fitness, ops.base.aggregation),
                                data_ranges=_data_u_ranges(fitness, ops.base.aggregation, widen=False))
            ops = build_operators(config, u_ranges=state.u_ranges, data_ranges=state.data_ranges)
            ladder = Ladder(config, fitness)
            try:
                with self._display() as display:
                    task = display.add_task("search", total=config.generations + 1,
                                            completed=state.generation + 1) if display else None

                    def report(text: str) -> None:
                        if display:
                            display.update(task, description=text)

                    if state.generation >= 0:  # a resumed run: finish the last generation's promotions
                        state = promote(state, ladder, config, save=self._saver(run_dir), report=report)
                    while state.generation < config.generations:
                        step = self._es_generation if config.method == "es" else self._generation
                        state = step(state, ops, ladder, run_dir, report)
                        if display:
                            last = state.history[-1]
                            display.update(task, advance=1, description=f"gen {last['generation']} "
                                           f"best {last['best']:.4g} new {last['new']}")
                    self._set_fitted(state)
                    if config.confirm and state.generation >= config.generations:
                        report(f"held-out confirmation ({config.confirm_protocol})")
                        self.confirmation_ = self._confirm(ladder, run_dir)
            finally:
                self._set_fitted(state)
                if run_dir is not None and state.generation >= 0:
                    self._write_artefacts(run_dir)
        return self

    def _saver(self, run_dir: Path | None):
        return (lambda state: save_checkpoint(run_dir, state)) if run_dir is not None else None

    def _generation(self, state: SearchState, ops: Operators, ladder: Ladder, run_dir: Path | None,
                    report) -> SearchState:
        start = time.perf_counter()
        first = state.generation < 0
        index = SemanticIndex(state, self.config)  # one loss, one entry: equivalent forms are merged
        candidates, state = ask(state, replace(ops, novel=index.novel))
        aliases = index.aliases(candidates)
        pending: dict[str, MirrorLoss] = {}
        for cand in candidates:
            key = aliases.get(cand.key, cand.key)
            if cand.loss is not None and key not in state.cache and key not in pending:
                pending[key] = cand.loss
        extra = {b.key: b for b in baselines(self.config.baselines)} if first else {}
        extra = {k: b for k, b in extra.items() if k not in state.cache}
        report(f"gen {state.generation + 1}: rung 0, {len(pending)} new losses" +
               (f" + {len(extra)} baselines" if extra else ""))
        jobs = {**pending, **{k: b.loss for k, b in extra.items()}}
        results = ladder.evaluate(jobs, 0, {})  # ONE batched job for the generation (and the baselines)
        state, metrics = tell(state, candidates, {k: results[k] for k in pending}, ops, aliases)
        state = index.label(state)
        if extra:
            records = baseline_records({k: results[k] for k in extra}, {k: b.loss for k, b in extra.items()},
                                       {k: b.label for k, b in extra.items()}, state.generation)
            state = replace(state, cache={**state.cache, **records})
        metrics["failed"] = sum(1 for k in pending if not results[k].ok)
        metrics["baselines"] = len(extra)
        metrics["merged"] = len(aliases)
        if run_dir is not None:
            save_checkpoint(run_dir, state)  # rung 0 done: a kill now resumes at the promotions
        state = promote(state, ladder, self.config, save=self._saver(run_dir), report=report)
        metrics["promoted"] = sum(1 for r in state.cache.values()
                                  if r.get("generation") == state.generation and r.get("rung", 0) > 0)
        metrics["seconds"] = round(time.perf_counter() - start, 3)
        state = replace(state, history=(*state.history[:-1], metrics))
        logger.info("generation %d: %s", metrics["generation"], metrics)
        if run_dir is not None:
            save_checkpoint(run_dir, state)
            with open(run_dir / "log.jsonl", "a") as log:
                log.write(json.dumps(metrics) + "\n")
        return state

    def contenders(self, top: int | None = None) -> list:
        """The top ``top`` (default ``config.confirm``) discovered losses and baselines as confirmation
        :class:`Contender` s, each kind ranked by highest rung, then mean."""
        from symloss.search._confirm import Contender

        self._check_fitted()
        top = self.config.confirm if top is None else top
        out = []
        for kind in ("discovered", "baseline"):
            for key in top_records(self.state_.cache, kind, top):
                record = self.state_.cache[key]
                loss = loss_of(record, self.config, key)
                entry = record.get("rungs", {}).get(str(record.get("rung", 0)), {})
                label = record.get("name") or _short(f"{loss.name}: " + "; ".join(
                    f"{slot} {text}" for slot, text in record["formulas"].items()))
                out.append(Contender(label, kind, loss, record.get("rung", 0), float(record["mean"]),
                                     float(record["std"]), tuple(entry.get("seeds", ()))))
        return out

    def _confirm(self, ladder: Ladder, run_dir: Path | None):
        """Retrain the contenders on the held-out seeds and start states (one batched job); report.md."""
        if ladder.at is None:
            logger.warning("held-out confirmation skipped: the fitness has no at(protocol) to train other seeds")
            return None
        from symloss.search._confirm import confirm, write_contenders
        from symloss.search._report import write_report

        contenders = self.contenders()
        if not contenders:
            return None
        if run_dir is not None and (run_dir / "report.md").exists() and _same_contenders(run_dir, contenders):
            logger.info("held-out confirmation: %s has these contenders (rerun with `symloss confirm`)",
                        run_dir / "report.md")
            return None
        fitness = ladder.fitness_at(self.config.confirmation_protocol())
        confirmation = confirm(contenders, fitness, protocol_text=self.config.confirm_protocol)
        score = getattr(fitness, "reference_score", None)
        self.reference_score_ = score() if callable(score) else None
        if run_dir is not None:  # contenders.json last: it marks these contenders as confirmed in a report
            write_report(run_dir, confirmation, config=self.config, reference=self.reference_score_)
            write_contenders(run_dir / "contenders.json", contenders)
        return confirmation

    def _es_generation(self, state: SearchState, ops: Operators, ladder: Ladder, run_dir: Path | None,
                       report) -> SearchState:
        """``method="es"``: one ES generation (``_es_search.es_step``), then its promotions, as for GP."""
        from symloss.search._es_search import es_step

        start = time.perf_counter()
        state = es_step(state, self.config, ops, ladder, report)
        if run_dir is not None:
            save_checkpoint(run_dir, state)
        state = promote(state, ladder, self.config, save=self._saver(run_dir), report=report)
        history = dict(state.history[-1])
        history["seconds"] = round(time.perf_counter() - start, 3)
        best = [r["mean"] for r in state.cache.values() if r.get("kind") == "discovered" and not r["reason"]]
        history["best"] = max(best, default=WORST)
        state = replace(state, history=(*state.history[:-1], history))
        if run_dir is not None:
            save_checkpoint(run_dir, state)
            with open(run_dir / "log.jsonl", "a") as log:
                log.write(json.dumps(history) + "\n")
        return state

    def _initial_state(self, ops: Operators, run_dir: Path | None) -> SearchState:
        if self._resume and run_dir is not None and (run_dir / "checkpoint.json").exists():
            return load_checkpoint(run_dir, ops.psets)
        return initial_state(self.config.seed)

    @contextmanager
    def _run_dir(self) -> Iterator[Path | None]:
        """The run directory, locked for the block, writable, holding this run's config.json; or None."""
        if self.config.run_dir is None:
            if self._resume:
                raise ValueError("resume: run_dir is None")
            yield None
            return
        run_dir = Path(self.config.run_dir)
        if not self._resume:
            _rundir.make_dir(run_dir)
        with _rundir.locked(run_dir):
            if self._resume:
                art.check_resume_config(run_dir, self.config)
            else:
                _rundir.claim_new(run_dir)
            _rundir.check_writable(run_dir)
            if not self._resume:
                write_json_atomic(run_dir / "config.json", self.config.to_dict())
            yield run_dir

    def _display(self):
        if not self.progress:
            return nullcontext(None)
        return progress_display()

    def _fitness_fn(self) -> FitnessFn:
        """The user's fitness or the built-in benchmark fitness, run locally or as Ray tasks."""
        if self.config.executor == "ray":
            return RayFitness(self.config, self.fitness)
        if self.fitness is not None:
            return self.fitness
        return benchmark_fitness(self.config, progress=self.progress)

    # -- results --------------------------------------------------------------------------------------------

    def _set_fitted(self, state: SearchState) -> None:
        self.state_ = state
        self.history_ = pd.DataFrame(list(state.history))
        self.hall_of_fame_ = art.hall_of_fame_table(state.cache, self.config.hall_of_fame,
                                                    baselines=max(3, self.config.confirm))
        self.pareto_ = art.pareto_table({k: r for k, r in state.cache.items()
                                         if r.get("kind", "discovered") == "discovered"})
        discovered = self.hall_of_fame_.index[self.hall_of_fame_["kind"] == "discovered"]
        self.best_ = self.loss(int(discovered[0])) if len(discovered) else None

    def loss(self, index: int = 0) -> MirrorLoss:
        """The MirrorLoss of hall-of-fame row ``index`` (0 = the top row; a baseline row gives that baseline).
        Pure accessor."""
        self._check_fitted()
        if not 0 <= index < len(self.hall_of_fame_):
            raise IndexError(f"index={index}: the hall of fame has {len(self.hall_of_fame_)} rows")
        row = self.hall_of_fame_.iloc[index]
        if row["kind"] == "baseline":
            return loss_of(self.state_.cache[row["key"]], self.config, row["key"])
        slots = {slot: stabilise(parse_formula(row[slot], SLOT_SPECS[slot])) for slot in self.config.slots}
        return base_loss(self.config).replace(**slots, name=loss_name(row["key"]))

    def sympy(self, index: int = 0) -> dict[str, sp.Expr]:
        """SymPy expression of each evolved slot of hall-of-fame row ``index``."""
        loss = self.loss(index)
        return {slot: getattr(loss, slot) for slot in self.config.slots}

    def latex(self, index: int = 0) -> str:
        return self.loss(index).latex()

    def _check_fitted(self) -> None:
        if not hasattr(self, "hall_of_fame_"):
            raise RuntimeError("this LossSearch is not fitted yet: call fit() first")

    def _write_artefacts(self, run_dir: Path) -> None:
        self.hall_of_fame_.to_csv(run_dir / "hall_of_fame.csv", index=False)
        if not self.history_.empty:
            plot_fitness(self.state_.history, run_dir / "fitness.png")
        everything = art.hall_of_fame_table(self.state_.cache, len(self.state_.cache) or 1)
        plot_pareto(self.pareto_, everything, run_dir / "pareto.png")
        if self.best_ is None:
            return
        row = self.hall_of_fame_[self.hall_of_fame_["kind"] == "discovered"].iloc[0]
        best = {**self.best_.to_dict(), "latex": self.best_.latex(), "fitness_mean": float(row["fitness_mean"]),
                "fitness_std": float(row["fitness_std"]), "complexity": int(row["complexity"]),
                "key": row["key"], "search": self.config.to_dict(),
                "u_ranges": {slot: list(r) for slot, r in self.state_.u_ranges.items()}}
        write_json_atomic(run_dir / "best.json", best)
        (run_dir / "best.tex").write_text(self.best_.latex() + "\n")
        (run_dir / "best.py").write_text(self.best_.to_python())
        if "mirror" in self.config.slots:
            best_baselines = top_records(self.state_.cache, "baseline", 1)
            plot_mirror(self.best_, run_dir / "mirror.png", u_range=self.state_.data_ranges.get("mirror"),
                        baselines=[loss_of(self.state_.cache[k], self.config, k) for k in best_baselines])


def _same_contenders(run_dir: Path, contenders: list) -> bool:
    """Whether ``run_dir/contenders.json`` holds these contenders (same labels and losses)."""
    from symloss.search._confirm import read_contenders

    try:
        stored = read_contenders(run_dir / "contenders.json")
    except (OSError, ValueError):
        return False
    return [(c.label, c.loss.to_dict()) for c in stored] == [(c.label, c.loss.to_dict()) for c in contenders]


MAX_LABEL = 160
"""Longest contender label (the loss's name keeps it unique; the full formula is in the loss)."""


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 3] + "..."


def _data_u_ranges(fitness: FitnessFn, aggregation: str, *, widen: bool = True) -> dict[str, tuple[float, float]]:
    """The fitness's ``u_ranges(aggregation)`` (the data's u range per slot), checked; {} if it has none.
    ``widen=False``: where the data lies (a fitness whose ``u_ranges`` has no ``widen`` gives {})."""
    method = getattr(fitness, "u_ranges", None)
    if not callable(method):
        return {}
    if not widen:
        try:
            ranges = method(aggregation, widen=False)
        except TypeError:
            return {}
    else:
        ranges = method(aggregation)
    if not isinstance(ranges, Mapping):
        raise TypeError(f"fitness.u_ranges returned {type(ranges).__name__}; expected {{slot: (low, high)}}")
    out = {}
    for slot, pair in ranges.items():
        low, high = (float(v) for v in pair)
        if slot not in U_RANGE_SLOTS or not (math.isfinite(low) and low < high <= 0):
            raise ValueError(f"fitness.u_ranges: {slot}={pair!r}; expected a slot of {list(U_RANGE_SLOTS)} "
                             "with finite low < high <= 0")
        out[slot] = (low, high)
    return out


__all__ = ["LossSearch", "FitnessResult"]
