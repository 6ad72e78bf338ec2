"""The population trainer: P candidate losses x S seeds trained at once as P * S stacked policies.

Member i = p * S + s trains candidate loss p with seed s; one step is described in ``_step``.

A member whose loss or gradient norm is non-finite (or whose loss raises) is frozen from that step on:
its update is exactly zero, it keeps its last finite parameters, it is marked failed with the step and
the reason, and it has no effect on any other member (no reduction mixes members). Populations larger
than ``max_members_per_chunk`` (or the memory estimate) train chunk by chunk with identical minibatches,
and all chunks are then scored in one fitness call (one simulator batch for the ``return`` fitness).

On CPU, training runs with the thread count of ``symloss.train._cpu`` (the CPUs other processes leave
free, or ``TrainConfig.threads``) and with denormals flushed to zero; both are restored afterwards.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence

import torch

from symloss.bench import TokenPolicySpec
from symloss.objectives import MirrorLoss
from symloss.train._config import TrainConfig
from symloss.train._cpu import ThreadPolicy, flush_denormals
from symloss.train._data import PreferenceData, prepare_data
from symloss.train._fitness import FitnessContext, resolve_fitness, split_fitness
from symloss.train._result import PopulationResult
from symloss.train._soup import seed_soup
from symloss.train._step import BAD_LOSS, CURVES, train_chunk
from symloss.validation import ConfigError, check_device

__all__ = ["PopulationTrainer", "member_bytes"]

log = logging.getLogger(__name__)

CPU_MEMORY_MB = 40.0
"""Default CPU chunk budget: 4 members at the search budget (32 pairs), 16 at 8 pairs. Small chunks keep the
activations in cache: at 32 pairs, P = 64, chunks of 4 train 1.1-1.2x faster than chunks of 9 and 1.5x
faster than one chunk of 64 (benchmarks/RESULTS.md, population speed)."""


def member_bytes(spec: TokenPolicySpec, batch_size: int, seg_len: int, *, dtype_bytes: int = 4,
                 per_member_obs: bool = False) -> int:
    """Estimated memory of one member during a step: activations, gradients, parameters, Adam moments."""
    rows = 2 * batch_size * seg_len  # chosen and rejected steps
    per_row = 3 * sum(spec.hidden) + 3 * spec.act_dim * spec.n_bins + 4 * spec.act_dim
    per_row += (spec.obs_dim + spec.act_dim) if per_member_obs else 0
    n_params = sum(i * o + o for i, o in zip(spec.sizes[:-1], spec.sizes[1:]))
    return int(1.5 * dtype_bytes * (rows * per_row + 5 * n_params))


def _reason(code: int, step: int, loss_value: float, raised: tuple[int, str] | None) -> str:
    if code == 0:
        return ""
    if raised is not None and raised[0] == step:
        return f"{raised[1]} (step {step})"
    if code == BAD_LOSS:
        return f"non-finite loss ({loss_value}) at step {step}"
    return f"non-finite gradient at step {step}"


class PopulationTrainer:
    """Train P candidate losses x S seeds as one batched population and score them.

    >>> trainer = PopulationTrainer(TrainConfig(steps=250, fitness="offline"))   # doctest: +SKIP
    >>> data = trainer.prepare(ds, spec, reference)        # reference log-probs, once per dataset
    >>> result = trainer.fit([dpo(), orpo()], data, seeds=3)
    >>> result.fitness, result.fitness_std, result.status
    """

    def __init__(self, config: TrainConfig | None = None, **overrides) -> None:
        """Store ``config`` (default ``TrainConfig()``) with any field ``overrides`` applied."""
        if config is not None and not isinstance(config, TrainConfig):
            raise TypeError(f"config: expected a TrainConfig, got {type(config).__name__}")
        self.config = dataclasses.replace(config or TrainConfig(), **overrides)
        self._threads = ThreadPolicy(self.config.threads)  # keeps its last CPU sample across fits

    @property
    def thread_policy(self) -> ThreadPolicy:
        """The CPU thread policy of training and scoring (``current``: the threads chosen last)."""
        return self._threads

    def prepare(self, ds, spec: TokenPolicySpec, reference: dict[str, torch.Tensor], *,
                holdout_fraction: float = 0.1, split_seed: int = 0) -> PreferenceData:
        """:func:`prepare_data` on this trainer's device and dtype (hold the result across generations)."""
        return prepare_data(ds, spec, reference, holdout_fraction=holdout_fraction, split_seed=split_seed,
                            device=self.config.device, dtype=self.config.torch_dtype)

    def chunk_size(self, data: PreferenceData, n_members: int, n_seeds: int) -> int:
        """Members per chunk: ``max_members_per_chunk`` or the memory budget over :func:`member_bytes`."""
        cfg = self.config
        if cfg.max_members_per_chunk is not None:
            return min(cfg.max_members_per_chunk, n_members)
        budget_mb = cfg.memory_budget_mb
        if budget_mb is None:
            if data.device.type == "cuda":
                budget_mb = torch.cuda.mem_get_info(data.device)[0] / 2**20 / 2
            else:
                budget_mb = CPU_MEMORY_MB
        per = member_bytes(data.spec, min(cfg.batch_size, data.n_train), data.train["chosen_obs"].shape[1],
                           dtype_bytes=torch.finfo(data.dtype).bits // 8, per_member_obs=n_seeds > 1)
        return max(1, min(n_members, int(budget_mb * 2**20 // per)))

    def fit(self, losses: Sequence[MirrorLoss], data: PreferenceData, *,
            seeds: int | Sequence[int] | None = None, progress: bool = False) -> PopulationResult:
        """Train every (loss, seed) member from the reference, then score it with the configured fitness.

        Args:
            losses: the P candidate objectives.
            data: from :meth:`prepare` / :func:`prepare_data`.
            seeds: S (seeds 0..S-1) or the seeds themselves; None: the config's (``config.seed_list``).
            progress: show a progress bar over the training steps of every chunk (on stderr).
        """
        losses, seeds = _check_losses(losses), _check_seeds(self.config.seed_list if seeds is None else seeds)
        if len(seeds) % self.config.soup:
            raise ConfigError(f"seeds: {len(seeds)} seeds cannot be split into soups of {self.config.soup}; give a "
                              f"multiple of {self.config.soup} seeds or change TrainConfig.soup")
        data = self._check_data(data)
        cfg, fitness_fn, start = self.config, resolve_fitness(self.config.fitness), time.perf_counter()
        n_seeds = len(seeds)
        candidates = [p for p in range(len(losses)) for _ in seeds]
        member_seeds = [s for _ in losses for s in seeds]
        size = self.chunk_size(data, len(candidates), n_seeds)
        starts = range(0, len(candidates), size)
        outs = []
        if self._threads.fixed != cfg.threads:
            self._threads = ThreadPolicy(cfg.threads)
        with self._threads.scope() as tick:
            with (_progress_bar(progress, len(starts) * cfg.steps, f"training {len(candidates)} members") as advance,
                  flush_denormals(data.device.type == "cpu", threads=self._threads.limit)):
                on_step = tick if advance is None else lambda: (tick(), advance())
                for lo in starts:
                    cands, mseeds = candidates[lo:lo + size], member_seeds[lo:lo + size]
                    log.debug("training members %d..%d of %d", lo, lo + len(cands), len(candidates))
                    outs.append(train_chunk(cfg, losses, data, cands, mseeds, shared=n_seeds == 1, on_step=on_step))
            trained = time.perf_counter()
            fitness, metrics = self._score_checkpoints(fitness_fn, data, outs, candidates, member_seeds)
        timings = {"train": trained - start, "score": time.perf_counter() - trained}
        parts = [_to_cpu(out, candidates[lo:lo + size]) for out, lo in zip(outs, starts)]
        return _assemble(losses, seeds, parts, fitness, metrics, time.perf_counter() - start, timings)

    def _score_checkpoints(self, fitness_fn, data: PreferenceData, outs: list[dict], cands: list[int],
                           seeds: list[int]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """:meth:`_score` of the scored weights; with ``checkpoints = K > 1``, the mean fitness over the K
        checkpoints of every member (f = (1 / K) sum_j f(theta_{t_j})) and the extra metrics of the last one."""
        if outs[0]["checkpoints"] is None:
            return self._score(fitness_fn, data, outs, cands, seeds)
        per = [self._score(fitness_fn, data, [{**out, "params": out["checkpoints"][j]} for out in outs], cands, seeds)
               for j in range(len(outs[0]["checkpoints"]))]
        return torch.stack([fit for fit, _ in per]).mean(0), per[-1][1]

    def _score(self, fitness_fn, data: PreferenceData, outs: list[dict], cands: list[int],
               seeds: list[int]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Fitness ``[n]`` of every surviving member in one call (NaN for failed ones), and extra metrics.

        All chunks are scored together: the ``return`` fitness then runs one simulator batch for the whole
        population (``_fitness.EVAL_MAX_ENVS`` bounds its memory) instead of one per chunk. With ``soup = G > 1``,
        the policies scored are the seed soups (:func:`~symloss.train.seed_soup`), each once, and every seed of a
        soup gets its fitness."""
        alive = torch.cat([out["active"] for out in outs]).cpu()
        params = {k: torch.cat([out["params"][k] for out in outs]) for k in outs[0]["params"]}
        g = self.config.soup
        if g > 1:  # score each soup once (alive if all its seeds are) and give its fitness to all its seeds
            n_seeds = len(cands) // len(set(cands))
            params = seed_soup(params, len(set(cands)), n_seeds, g)
            fit, metrics = self._score_members(fitness_fn, data, params, alive.reshape(-1, g).all(1), cands[::g],
                                               seeds[::g])
            return fit.repeat_interleave(g), {k: v.repeat_interleave(g) for k, v in metrics.items()}
        return self._score_members(fitness_fn, data, params, alive, cands, seeds)

    def _score_members(self, fitness_fn, data: PreferenceData, params: dict[str, torch.Tensor], alive: torch.Tensor,
                       cands: list[int], seeds: list[int]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Fitness ``[n]`` of the policies ``params`` (NaN where not ``alive``) and extra metrics."""
        fit = torch.full((len(cands),), math.nan, dtype=torch.float64)
        metrics: dict[str, torch.Tensor] = {}
        if not alive.any():
            return fit, metrics
        keep = alive.nonzero().squeeze(1)
        params = {k: v[keep.to(v.device)] for k, v in params.items()}
        ctx = FitnessContext(data, self.config, torch.tensor(cands)[keep], torch.tensor(seeds)[keep],
                             threads=self.config.threads)
        with torch.no_grad():
            values, extras = split_fitness(fitness_fn(data.spec, params, ctx), len(keep))
        fit[keep] = values
        for name, v in extras.items():
            metrics[name] = torch.full((len(cands),), math.nan, dtype=torch.float64)
            metrics[name][keep] = v
        return fit, metrics

    def _check_data(self, data: PreferenceData) -> PreferenceData:
        if not isinstance(data, PreferenceData):
            raise TypeError(f"data: expected PreferenceData (from PopulationTrainer.prepare or prepare_data), "
                            f"got {type(data).__name__}")
        cfg = self.config
        if cfg.fitness == "return" and data.env is None:
            raise ValueError("fitness='return': data.env is None (synthetic data); use fitness='offline' or a "
                             "callable")
        if cfg.fitness == "offline" and data.holdout is None:
            raise ValueError("fitness='offline': data has no held-out split; prepare it with holdout_fraction > 0")
        check_device("device", cfg.device)  # here, where it trains (a Ray worker's config skipped this)
        return data.to(cfg.device, cfg.torch_dtype)


@contextlib.contextmanager
def _progress_bar(show: bool, total: int, description: str) -> Iterator[Callable[[], None] | None]:
    """A rich progress bar over ``total`` steps; yields its advance callback (None when not shown).

    When stderr is not a terminal (a run under ``nohup``, a log file, a notebook's captured output) a bar does not
    animate, so one plain line is printed at every tenth of the steps instead: ``training 288 members: 720/7200
    steps (10%), 3.1 min, about 28 min left``."""
    if not show:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        yield _plain_progress(total, description)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)


def _plain_progress(total: int, description: str) -> Callable[[], None]:
    """An advance callback that prints ``description: k/total steps (p%), elapsed, left`` to stderr each time
    the completed share passes another tenth (flushed at once, so a log shows where a long run is)."""
    start, done, shown = time.perf_counter(), 0, 0

    def advance() -> None:
        nonlocal done, shown
        done += 1
        tenth = 10 * done // max(total, 1)
        if tenth > shown:
            shown = tenth
            elapsed = time.perf_counter() - start
            left = elapsed * (total - done) / done
            print(f"{description}: {done}/{total} steps ({10 * tenth}%), {elapsed / 60:.1f} min, about "
                  f"{left / 60:.0f} min left", file=sys.stderr, flush=True)

    return advance


def _check_losses(losses: Sequence[MirrorLoss]) -> list[MirrorLoss]:
    if isinstance(losses, MirrorLoss):
        losses = [losses]
    losses = list(losses)
    if not losses:
        raise ValueError("losses=[]: give at least one MirrorLoss")
    bad = [i for i, loss in enumerate(losses) if not isinstance(loss, MirrorLoss)]
    if bad:
        raise TypeError(f"losses[{bad[0]}]: expected a MirrorLoss, got {type(losses[bad[0]]).__name__}")
    return losses


def _check_seeds(seeds: int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(f"seeds={seeds!r}: must be >= 1 (a count) or a list of distinct seeds")
        return tuple(range(seeds))
    values = tuple(seeds)
    if not values or len(set(values)) != len(values) or not all(isinstance(s, int) and s >= 0 for s in values):
        raise ValueError(f"seeds={seeds!r}: must be a count >= 1 or a non-empty list of distinct integers >= 0")
    return values


def _to_cpu(out: dict, cands: list[int]) -> dict:
    loss = out["curves"]["loss"]
    reasons = []
    for i, (code, step) in enumerate(zip(out["code"].tolist(), out["failed_at"].tolist())):
        value = loss[i, step].item() if step >= 0 else math.nan
        reasons.append(_reason(code, step, value, out["raised"].get(cands[i])))
    last, checkpoints = out.get("last_params"), out.get("checkpoints")
    return {"params": {k: v.cpu() for k, v in out["params"].items()},
            "last_params": None if last is None else {k: v.cpu() for k, v in last.items()},
            "checkpoints": None if checkpoints is None else [{k: v.cpu() for k, v in c.items()} for c in checkpoints],
            "curves": {k: v.cpu() for k, v in out["curves"].items()}, "failed_at": out["failed_at"].cpu(),
            "reasons": reasons}


def _assemble(losses: list[MirrorLoss], seeds: tuple[int, ...], parts: list[dict], fitness: torch.Tensor,
              extras: dict[str, torch.Tensor], wall_s: float, timings: dict[str, float]) -> PopulationResult:
    p, s = len(losses), len(seeds)

    def grid(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(p, s, *x.shape[1:])

    per_seed = grid(fitness)
    reasons = [r for part in parts for r in part["reasons"]]
    failed_at = grid(torch.cat([part["failed_at"] for part in parts]))
    return PopulationResult(
        names=tuple(loss.name for loss in losses), seeds=seeds, fitness_per_seed=per_seed,
        fitness=per_seed.mean(1), fitness_std=per_seed.std(1, correction=0),
        member_status=tuple(tuple("failed" if r else "ok" for r in reasons[i * s:(i + 1) * s]) for i in range(p)),
        failure_step=failed_at,
        failure_reason=tuple(tuple(reasons[i * s:(i + 1) * s]) for i in range(p)),
        curves={k: grid(torch.cat([part["curves"][k] for part in parts])) for k in CURVES},
        metrics={name: grid(v) for name, v in sorted(extras.items())},
        params={k: torch.cat([part["params"][k] for part in parts]) for k in parts[0]["params"]},
        last_params=None if parts[0]["last_params"] is None else
        {k: torch.cat([part["last_params"][k] for part in parts]) for k in parts[0]["last_params"]},
        checkpoints=None if parts[0]["checkpoints"] is None else tuple(
            {k: torch.cat([part["checkpoints"][j][k] for part in parts]) for k in parts[0]["checkpoints"][j]}
            for j in range(len(parts[0]["checkpoints"]))),
        wall_s=wall_s,
        timings=timings,
    )
