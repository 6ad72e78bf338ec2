"""The built-in fitness of the search: train every candidate with the batched population trainer.

Preparation happens once, on the first call: the benchmark dataset is built (or loaded from the cache),
the SFT reference is fitted (or loaded from the cache: ``<cache>/references/*.pt``, tensors only, read
with ``weights_only=True``), and the reference log-probs are computed. Each call then trains all of a
generation's new candidates x ``seeds`` as one population and returns their fitness (mean over seeds).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from symloss.objectives import MirrorLoss
from symloss.search._config import SearchConfig
from symloss.search._evolve import WORST, FitnessResult

logger = logging.getLogger(__name__)

REFERENCE_STEPS = 1500


def cached_reference(ds: Any, spec: Any, *, seed: int = 0, steps: int = REFERENCE_STEPS,
                     cache_dir: str | Path | None = None) -> dict[str, torch.Tensor]:
    """The SFT reference for ``ds``, fitted once per (dataset, spec, steps, seed) and cached on disk."""
    from symloss import bench

    root = Path(cache_dir or bench.default_cache_dir()) / "references"
    key = f"{bench.dataset_hash(ds)[:16]}-{spec.n_bins}-{'x'.join(map(str, spec.hidden))}-{steps}-{seed}"
    path = root / f"{key}.pt"
    if path.exists():
        try:
            return torch.load(path, weights_only=True)
        except (OSError, RuntimeError, EOFError) as exc:
            logger.warning("reference cache %s is unreadable (%s); refitting", path, exc)
    reference = bench.fit_reference(spec, ds, steps=steps, seed=seed)
    root.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(reference, tmp)
    tmp.replace(path)
    return reference


class TrainerFitness:
    """Fitness of candidate losses = trained policy's score (``return`` or ``offline``), mean over seeds."""

    def __init__(self, *, env: str, dataset: str, train_config: Any, seeds: int = 1,
                 progress: bool = True, train_progress: bool = False,
                 dataset_overrides: dict[str, Any] | None = None) -> None:
        self.env, self.dataset, self.seeds = env, dataset, seeds
        self.train_config = train_config
        self.progress = progress
        self.train_progress = train_progress  # a bar over training steps; off inside the search's live display
        self.dataset_overrides = dict(dataset_overrides or {})
        self._trainer = None
        self._data = None
        self.last_result = None

    @classmethod
    def from_search_config(cls, config: SearchConfig, *, progress: bool = True) -> TrainerFitness:
        from symloss.train import TrainConfig

        train_config = TrainConfig(steps=config.steps, batch_size=config.batch_size, episodes=config.episodes,
                                   lr=config.lr, fitness=config.fitness, device=config.device,
                                   eval_seed=config.seed)
        return cls(env=config.env, dataset=config.dataset, train_config=train_config, seeds=config.seeds,
                   progress=progress,
                   dataset_overrides={} if config.n_pairs is None else {"n_pairs": config.n_pairs})

    def prepare(self) -> None:
        """Build the dataset, the reference and the trainer's data (once)."""
        if self._data is not None:
            return
        from symloss import bench
        from symloss.train import PopulationTrainer

        ds = bench.build_dataset(self.env, self.dataset, progress=self.progress, **self.dataset_overrides)
        spec = bench.spec_for_dataset(ds)
        with self._status(f"SFT reference for {self.env}/{self.dataset} (fitted once, then cached)"):
            reference = cached_reference(ds, spec)
        self._trainer = PopulationTrainer(self.train_config)
        self._data = self._trainer.prepare(ds, spec, reference)

    def _status(self, message: str):
        if not self.progress:
            return nullcontext()
        from rich.console import Console

        return Console(stderr=True).status(message)

    def __call__(self, losses: Sequence[MirrorLoss]) -> list[FitnessResult]:
        if not losses:
            return []
        self.prepare()
        result = self._trainer.fit(list(losses), self._data, seeds=self.seeds, progress=self.train_progress)
        self.last_result = result
        out = []
        for mean, std, status, reason in zip(result.fitness.tolist(), result.fitness_std.tolist(),
                                             result.status, result.reason, strict=True):
            if status != "ok" or not math.isfinite(mean):
                out.append(FitnessResult(WORST, 0.0, reason or "training failed"))
            else:
                out.append(FitnessResult(float(mean), float(std) if math.isfinite(std) else 0.0))
        return out
