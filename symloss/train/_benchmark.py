"""The trainer-backed fitness: losses trained and scored by a protocol on a benchmark dataset.

:class:`BenchmarkFitness` is what the loss search and ``symloss eval`` call. Preparation happens once:
the benchmark dataset is built (or loaded from the cache), the SFT reference is fitted (or loaded from the
cache, :func:`symloss.bench.load_reference`), and the reference log-probs are computed. Each call then
trains all the given losses x the protocol's seeds as one population (:class:`PopulationTrainer`) and
returns the :class:`PopulationResult`: mean and std of the score over seeds, status and reason per loss.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch

from symloss import bench
from symloss.objectives import MirrorLoss, aggregate
from symloss.train._config import TrainConfig
from symloss.train._data import PreferenceData
from symloss.train._population import PopulationTrainer
from symloss.train._result import PopulationResult
from symloss.validation import ConfigError

__all__ = ["BenchmarkFitness", "data_u_ranges"]

U_QUANTILES = (0.001, 0.999)
U_WIDEN = 0.5
U_HIGH_CAP = -1e-4


class BenchmarkFitness:
    """Score = the trained policies' ``protocol.fitness``, for P losses x S seeds trained at once.

    Args:
        env, dataset: the benchmark environment and dataset variant (``bench.build_dataset``).
        protocol: the :class:`TrainConfig` (e.g. ``TrainConfig.preset("final")``); its seeds, steps, episodes.
        dataset_overrides: extra ``BenchConfig`` fields of the dataset, e.g. ``{"n_pairs": 64}``.
        progress: show the dataset build and reference fit; ``train_progress``: a bar over training steps.
    """

    def __init__(self, *, env: str, dataset: str, protocol: TrainConfig,
                 dataset_overrides: Mapping[str, Any] | None = None, progress: bool = True,
                 train_progress: bool = False) -> None:
        if not isinstance(protocol, TrainConfig):
            raise TypeError(f"protocol: expected a TrainConfig (e.g. TrainConfig.preset('final')), got "
                            f"{type(protocol).__name__}")
        self.env, self.dataset, self.protocol = env, dataset, protocol
        self.dataset_overrides = dict(dataset_overrides or {})
        self.progress, self.train_progress = progress, train_progress
        self.trainer = PopulationTrainer(protocol)
        self.data: PreferenceData | None = None

    @classmethod
    def from_data(cls, data: PreferenceData, protocol: TrainConfig) -> BenchmarkFitness:
        """A fitness on prepared :class:`PreferenceData` (your own data: no benchmark build)."""
        fitness = cls(env=data.env or "custom", dataset="custom", protocol=protocol, progress=False)
        fitness.data = data.to(protocol.device, protocol.torch_dtype)
        return fitness

    def at(self, protocol: TrainConfig) -> BenchmarkFitness:
        """The same benchmark scored by another protocol (a rung, the confirmation), sharing the prepared data."""
        other = BenchmarkFitness(env=self.env, dataset=self.dataset, protocol=protocol,
                                 dataset_overrides=self.dataset_overrides, progress=self.progress,
                                 train_progress=self.train_progress)
        if self.data is not None:
            other.data = self.data.to(protocol.device, protocol.torch_dtype)
        return other

    def reference_score(self) -> float | None:
        """Mean return of the untrained SFT reference on this protocol's start states (all of them: S x E with
        ``start_states="per_seed"``) and action rule (the bar
        "do not train" sets); None for a fitness other than ``return`` or data without a simulator."""
        if self.protocol.fitness != "return":
            return None
        data = self.prepare()
        if data.env is None:  # synthetic data: no simulator to score the reference in
            return None
        reference = {k: v.detach().to("cpu", torch.float32) for k, v in data.reference.items()}
        states = self.protocol.start_state_seeds
        returns = bench.episode_returns(data.spec, reference, data.env, episodes=len(states),
                                        seed=states.start, action=self.protocol.action,
                                        temperature=self.protocol.temperature, horizon=self.protocol.horizon)
        return float(np.mean(returns))

    def validate(self) -> None:
        """Check, before any work, the env, dataset and overrides (unless the data is given), and that the
        protocol's ``horizon`` fits the environment's episodes."""
        if self.data is None:
            bench.make_config(self.env, self.dataset, **self.dataset_overrides)
        env = self.env if self.data is None else self.data.env
        horizon = self.protocol.horizon
        if env is not None and horizon is not None and horizon > bench.env_info(env).max_steps:
            limit = bench.env_info(env).max_steps
            raise ConfigError(f"horizon={horizon}: {env}'s episodes end after {limit} steps; give a horizon "
                              f"<= {limit} or None")

    def prepare(self) -> PreferenceData:
        """Build the dataset, the reference and the trainer's data (once); the data."""
        if self.data is None:
            self.validate()
            ds = bench.build_dataset(self.env, self.dataset, progress=self.progress, **self.dataset_overrides)
            spec = bench.spec_for_dataset(ds)
            with self._status(f"SFT reference for {self.env}/{self.dataset} (fitted once, then cached)"):
                reference = bench.load_reference(ds, spec)
            self.data = self.trainer.prepare(ds, spec, reference)
        return self.data

    def u_ranges(self, aggregation: str, *, widen: bool = True) -> dict[str, tuple[float, float]]:
        """:func:`data_u_ranges` of the training pairs (prepares the data first)."""
        return data_u_ranges(self.prepare().train, aggregation, widen=widen)

    def __call__(self, losses: Sequence[MirrorLoss]) -> PopulationResult:
        """Train ``losses`` x the protocol's seeds and score them (prepares the data first)."""
        return self.trainer.fit(list(losses), self.prepare(), progress=self.train_progress)

    def _status(self, message: str):
        if not self.progress:
            return nullcontext()
        from rich.console import Console

        return Console(stderr=True).status(message)


def _round_outward(x: float, *, up: bool, digits: int = 3) -> float:
    if x == 0:
        return 0.0
    exponent = math.floor(math.log10(abs(x))) - (digits - 1)
    step = (math.ceil if up else math.floor)(x / 10.0**exponent)
    return round(step * 10.0**exponent, max(0, -exponent))


def _widened(values: torch.Tensor, widen: bool = True) -> tuple[float, float]:
    low, high = np.quantile(values.double().cpu().numpy(), U_QUANTILES)
    if not widen:
        high = min(high, U_HIGH_CAP)
        return _round_outward(min(low, 2 * high), up=False), _round_outward(high, up=True)
    pad = U_WIDEN * (high - low) if high > low else U_WIDEN * max(abs(low), 1.0)
    high = min(high + pad, U_HIGH_CAP)
    low = low - pad if low - pad < high else 2 * high  # all the data within (-1e-4, 0): [-2e-4, -1e-4]
    return _round_outward(low, up=False), _round_outward(high, up=True)


def data_u_ranges(train: Mapping[str, torch.Tensor], aggregation: str, *,
                  widen: bool = True) -> dict[str, tuple[float, float]]:
    """The u ranges on which candidates must be valid, from the reference's log-probs on the training pairs.

    ``mirror``: m's arguments as the loss computes them, from both responses: per-token log-probs for
    ``token`` aggregation, else the aggregated u = sum_t logp_t (``sequence``) or its length mean (``mean``).
    ``imitation``: psi's argument u_w, the chosen responses' aggregated log-prob. Each range is the
    [0.1%, 99.9%] quantile interval widened by half its width on each side (training moves u away from the
    reference), its upper end capped at -1e-4 (u < 0), rounded outward to 3 significant digits.
    """
    samples = data_u_samples(train, aggregation)
    return {slot: _widened(values, widen) for slot, values in samples.items()}


def data_u_samples(train: Mapping[str, torch.Tensor], aggregation: str) -> dict[str, torch.Tensor]:
    """Every u the reference gives the training pairs, as :func:`data_u_ranges` reads them: ``mirror`` (m's
    arguments from both responses: per-token log-probs for ``token`` aggregation, else the aggregated u) and
    ``imitation`` (the chosen responses' aggregated log-prob). Where the data's u actually lie, not the widened
    interval a candidate must be valid on: a map can be valid on the interval and flat where the data are."""
    how = "mean" if aggregation == "mean" else "sequence"
    masks = {side: train[f"{side}_mask"] for side in ("chosen", "rejected")}
    logps = {side: train[f"ref_{side}_logps"] for side in masks}
    if aggregation == "token":
        mirror_u = torch.cat([logps[side][masks[side].bool()] for side in masks])
    else:
        mirror_u = torch.cat([aggregate(logps[side], masks[side], how) for side in masks])
    return {"mirror": mirror_u, "imitation": aggregate(logps["chosen"], masks["chosen"], how)}
