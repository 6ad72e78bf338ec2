"""Ray executor: a generation's new candidates split into batched jobs, one Ray task per worker.

Each task receives the candidates as ``MirrorLoss.to_dict()`` records (rebuilt in the worker by
``MirrorLoss.from_dict``: formulas are parsed, never evaluated) and a fitness: the user's callable
(serialised by Ray), or the built-in trainer fitness, rebuilt once per worker from the SearchConfig and
kept for the worker's lifetime so the dataset and reference are prepared only once. A task whose worker
dies is retried (``max_retries``), and so is one that raises (``retry_exceptions``); results come back in
candidate order, so a seed gives the same hall of fame as the local executor.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from symloss.objectives import MirrorLoss
from symloss.search._config import SearchConfig
from symloss.search._fitness import FitnessFn, FitnessResult, as_results, benchmark_fitness
from symloss.train import BenchmarkFitness

logger = logging.getLogger(__name__)

MAX_RETRIES = 3
_WORKER_FITNESS: dict[str, Any] = {}


def _ray():
    try:
        import ray
    except ImportError as exc:
        raise ImportError("executor='ray' needs Ray: pip install symloss[ray]") from exc
    return ray


def _worker_fitness(config_json: str) -> FitnessFn:
    """The built-in fitness for ``config_json``, built once per worker process."""
    if config_json not in _WORKER_FITNESS:
        config = SearchConfig.from_dict(json.loads(config_json))
        _WORKER_FITNESS[config_json] = benchmark_fitness(config, progress=False)
    return _WORKER_FITNESS[config_json]


def evaluate_records(records: list[dict[str, Any]], fitness: FitnessFn | None,
                     config_json: str) -> list[tuple[float, float, str]]:
    """What one Ray task runs: rebuild the losses and score them (plain tuples travel back)."""
    losses = [MirrorLoss.from_dict(r) for r in records]
    fn = fitness if fitness is not None else _worker_fitness(config_json)
    return [(r.mean, r.std, r.reason) for r in as_results(fn(losses))]


def split_evenly(items: Sequence[Any], parts: int) -> list[list[Any]]:
    """``items`` in ``parts`` contiguous chunks of sizes differing by at most one (no empty chunk)."""
    parts = max(1, min(parts, len(items)))
    size, extra = divmod(len(items), parts)
    chunks, start = [], 0
    for i in range(parts):
        end = start + size + (i < extra)
        chunks.append(list(items[start:end]))
        start = end
    return chunks


class RayFitness:
    """A fitness callable that evaluates candidates as batched Ray tasks.

    Args:
        config: the search's config (for the built-in fitness, and ``ray_address``).
        fitness: a user fitness to run in the workers instead of the built-in one.
        tasks: how many tasks per generation; default: the cluster's GPUs if any, else its CPUs.
    """

    def __init__(self, config: SearchConfig, fitness: FitnessFn | None = None, *, tasks: int | None = None) -> None:
        self.config = config
        self.fitness = fitness
        self.tasks = tasks
        self._remote = None
        self._local = None

    def validate(self) -> None:
        """Before any work: Ray is installed, and the built-in fitness's env and dataset names exist (the
        device is checked in the workers, which may have GPUs the driver lacks)."""
        _ray()
        if self.fitness is None:
            self._local_fitness().validate()
        elif callable(validate := getattr(self.fitness, "validate", None)):
            validate()

    def u_ranges(self, aggregation: str) -> dict[str, tuple[float, float]]:
        """The data's u ranges for the checks: from the built-in fitness's data, prepared here on the CPU
        (the dataset and reference caches make the workers' own preparation a load); or the user's."""
        if self.fitness is None:
            return self._local_fitness().u_ranges(aggregation)
        method = getattr(self.fitness, "u_ranges", None)
        return method(aggregation) if callable(method) else {}

    def _local_fitness(self) -> BenchmarkFitness:
        if self._local is None:
            self._local = benchmark_fitness(self.config, progress=False, device="cpu")
        return self._local

    def _ensure_started(self) -> None:
        ray = _ray()
        if not ray.is_initialized():
            ray.init(address=self.config.ray_address, include_dashboard=False, logging_level=logging.WARNING)
        if self._remote is None:
            self._remote = ray.remote(evaluate_records).options(max_retries=MAX_RETRIES, retry_exceptions=True)

    def _n_tasks(self) -> int:
        if self.tasks is not None:
            return self.tasks
        resources = _ray().cluster_resources()
        return int(resources.get("GPU", 0)) or max(1, int(resources.get("CPU", 1)))

    def __call__(self, losses: Sequence[MirrorLoss]) -> list[FitnessResult]:
        if not losses:
            return []
        self._ensure_started()
        ray = _ray()
        config_json = json.dumps(self.config.to_dict(), sort_keys=True)
        chunks = split_evenly([loss.to_dict() for loss in losses], self._n_tasks())
        refs = [self._remote.remote(chunk, self.fitness, config_json) for chunk in chunks]
        results = [FitnessResult(*r) for part in ray.get(refs) for r in part]
        logger.info("ray: %d candidates in %d tasks", len(losses), len(chunks))
        return results
