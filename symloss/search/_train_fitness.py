"""The built-in fitness of the search: train every candidate with the batched population trainer.

Preparation happens once, on the first call: the benchmark dataset is built (or loaded from the cache),
the SFT reference is fitted (or loaded from the cache: ``<cache>/references/*.pt``, see
:func:`cached_reference`), and the reference log-probs are computed. Each call then trains all of a
generation's new candidates x ``seeds`` as one population and returns their fitness (mean over seeds).
What is cheap to check (names, the device) is checked by :meth:`TrainerFitness.validate` before any work.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from symloss.objectives import MirrorLoss, aggregate
from symloss.search._config import SearchConfig
from symloss.search._evolve import WORST, FitnessResult
from symloss.validation import ConfigError

logger = logging.getLogger(__name__)

REFERENCE_STEPS = 1500


def reference_problem(params: Any, spec: Any) -> str:
    """Why ``params`` is not an SFT reference for ``spec`` (``""`` if it is).

    A reference is a dict holding exactly the tensors of ``bench.init_params(spec, 1)``: same keys, shapes
    and dtype (float32), plain dense tensors, every value finite.
    """
    from symloss import bench

    expected = bench.init_params(spec, 1, torch.Generator().manual_seed(0))
    if not isinstance(params, dict):
        return f"holds a {type(params).__name__}, not a dict of tensors"
    missing, extra = sorted(set(expected) - set(params)), sorted(map(str, set(params) - set(expected)))
    if missing or extra:
        return f"keys differ from the policy's (missing {missing}, unexpected {extra[:5]})"
    for key, like in expected.items():
        value = params[key]
        if type(value) is not torch.Tensor or value.layout != torch.strided:
            return f"{key!r} is a {type(value).__name__}, not a dense tensor"
        if value.shape != like.shape or value.dtype != like.dtype:
            return (f"{key!r} is {value.dtype} of shape {tuple(value.shape)}, expected {like.dtype} of shape "
                    f"{tuple(like.shape)}")
        if not torch.isfinite(value).all():
            return f"{key!r} holds non-finite values"
    return ""


def _load_reference(path: Path, spec: Any) -> tuple[dict[str, torch.Tensor] | None, str]:
    """The reference stored at ``path`` and ``""``, or None and why it is unusable. Never unpickles objects:
    ``torch.load(weights_only=True)`` accepts tensors and plain containers only."""
    try:
        with warnings.catch_warnings():  # torch's own notes on odd pickles: we say it once, below
            warnings.simplefilter("ignore")
            params = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a corrupt or tampered file may fail in any way; we refit
        first_line = (str(exc).strip().splitlines() or [""])[0][:200]
        return None, f"{type(exc).__name__}: {first_line}"
    reason = reference_problem(params, spec)
    return (None, reason) if reason else (params, "")


def cached_reference(ds: Any, spec: Any, *, seed: int = 0, steps: int = REFERENCE_STEPS,
                     cache_dir: str | Path | None = None) -> dict[str, torch.Tensor]:
    """The SFT reference for ``ds``, fitted once per (dataset, spec, steps, seed) and cached on disk.

    A cache file that does not load, or whose content is not a valid reference (:func:`reference_problem`:
    keys, shapes, dtype, finite values), is refitted with a warning naming the file; the file is replaced
    (atomically) only after the refit succeeded.
    """
    from symloss import bench

    root = Path(cache_dir or bench.default_cache_dir()) / "references"
    key = f"{bench.dataset_hash(ds)[:16]}-{spec.n_bins}-{'x'.join(map(str, spec.hidden))}-{steps}-{seed}"
    path = root / f"{key}.pt"
    if path.exists():
        reference, reason = _load_reference(path, spec)
        if reference is not None:
            return reference
        warnings.warn(f"symloss: SFT reference cache {path} is unusable ({reason}); refitting it", stacklevel=2)
    reference = bench.fit_reference(spec, ds, steps=steps, seed=seed)
    if reason := reference_problem(reference, spec):
        raise ValueError(f"SFT reference: fitting it on this dataset gave an invalid reference ({reason}); "
                         "check the dataset (non-finite observations?) or lower the reference's steps")
    root.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save(reference, tmp)
    tmp.replace(path)
    return reference


U_QUANTILES = (0.001, 0.999)
U_WIDEN = 0.5
U_HIGH_CAP = -1e-4


def _round_outward(x: float, *, up: bool, digits: int = 3) -> float:
    if x == 0:
        return 0.0
    exponent = math.floor(math.log10(abs(x))) - (digits - 1)
    step = (math.ceil if up else math.floor)(x / 10.0**exponent)
    return round(step * 10.0**exponent, max(0, -exponent))


def _widened(values: torch.Tensor) -> tuple[float, float]:
    low, high = np.quantile(values.double().cpu().numpy(), U_QUANTILES)
    pad = U_WIDEN * (high - low) if high > low else U_WIDEN * max(abs(low), 1.0)
    high = min(high + pad, U_HIGH_CAP)
    low = low - pad if low - pad < high else 2 * high  # all the data within (-1e-4, 0): [-2e-4, -1e-4]
    return _round_outward(low, up=False), _round_outward(high, up=True)


def data_u_ranges(train: Mapping[str, torch.Tensor], aggregation: str) -> dict[str, tuple[float, float]]:
    """The u ranges on which candidates must be valid, from the reference's log-probs on the training pairs.

    ``mirror``: m's arguments as the loss computes them, from both responses: per-token log-probs for
    ``token`` aggregation, else the aggregated u = sum_t logp_t (``sequence``) or its length mean (``mean``).
    ``imitation``: psi's argument u_w, the chosen responses' aggregated log-prob. Each range is the
    [0.1%, 99.9%] quantile interval widened by half its width on each side (training moves u away from the
    reference), its upper end capped at -1e-4 (u < 0), rounded outward to 3 significant digits.
    """
    how = "mean" if aggregation == "mean" else "sequence"
    masks = {side: train[f"{side}_mask"] for side in ("chosen", "rejected")}
    logps = {side: train[f"ref_{side}_logps"] for side in masks}
    if aggregation == "token":
        mirror_u = torch.cat([logps[side][masks[side].bool()] for side in masks])
    else:
        mirror_u = torch.cat([aggregate(logps[side], masks[side], how) for side in masks])
    chosen_u = aggregate(logps["chosen"], masks["chosen"], how)
    return {"mirror": _widened(mirror_u), "imitation": _widened(chosen_u)}


def check_device(device: str | torch.device) -> None:
    """Raise :class:`ConfigError` unless ``device`` exists on this machine (a CUDA device needs CUDA)."""
    dev = torch.device(device)
    if dev.type != "cuda":
        return
    if not torch.cuda.is_available():
        raise ConfigError(f"device={str(device)!r}: CUDA is not available on this machine "
                          "(torch.cuda.is_available() is False); use device='cpu'")
    count = torch.cuda.device_count()
    if dev.index is not None and dev.index >= count:
        raise ConfigError(f"device={str(device)!r}: must be one of cuda:0..cuda:{count - 1} on this machine")


class TrainerFitness:
    """Fitness of candidate losses = trained policy's score (``return`` or ``offline``), mean over seeds."""

    def __init__(self, *, env: str, dataset: str, train_config: Any, seeds: int | Sequence[int] = 1,
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

    @classmethod
    def from_data(cls, data: Any, train_config: Any, *, seeds: int | Sequence[int] = 1) -> TrainerFitness:
        """A fitness on prepared :class:`symloss.train.PreferenceData` (your own data: no benchmark build)."""
        from symloss.train import PopulationTrainer

        fitness = cls(env=data.env or "custom", dataset="custom", train_config=train_config, seeds=seeds,
                      progress=False)
        fitness._trainer = PopulationTrainer(train_config)
        fitness._data = data.to(train_config.device, train_config.torch_dtype)
        return fitness

    def validate(self, *, device: bool = True) -> None:
        """Check, before any work, the env, dataset and overrides (unless data is given) and the device."""
        if self._data is None:
            from symloss import bench

            bench.make_config(self.env, self.dataset, **self.dataset_overrides)
        if device:
            check_device(self.train_config.device)

    def prepare(self) -> None:
        """Build the dataset, the reference and the trainer's data (once)."""
        if self._data is not None:
            return
        self.validate()
        from symloss import bench
        from symloss.train import PopulationTrainer

        ds = bench.build_dataset(self.env, self.dataset, progress=self.progress, **self.dataset_overrides)
        spec = bench.spec_for_dataset(ds)
        with self._status(f"SFT reference for {self.env}/{self.dataset} (fitted once, then cached)"):
            reference = cached_reference(ds, spec)
        self._trainer = PopulationTrainer(self.train_config)
        self._data = self._trainer.prepare(ds, spec, reference)

    def u_ranges(self, aggregation: str) -> dict[str, tuple[float, float]]:
        """:func:`data_u_ranges` of the training pairs (prepares the data first)."""
        self.prepare()
        return data_u_ranges(self._data.train, aggregation)

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
