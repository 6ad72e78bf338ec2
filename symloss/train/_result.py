"""What a population run returns: fitness per candidate and per seed, status, failures, curves, parameters."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

__all__ = ["PopulationResult", "FRAME_COLUMNS"]

FRAME_COLUMNS: tuple[str, ...] = ("name", "fitness", "fitness_std", "status", "failure_step", "reason")
"""Columns of :meth:`PopulationResult.to_frame`, one row per candidate."""


@dataclass(frozen=True)
class PopulationResult:
    """Outcome of :meth:`PopulationTrainer.fit` for P candidates x S seeds (member (p, s) is row p * S + s).

    Attributes:
        names: candidate names ``[P]`` (the losses' ``name``).
        seeds: the S seeds.
        fitness_per_seed: ``[P, S]`` float64; NaN where the member failed.
        fitness: ``[P]`` mean over seeds; NaN when any seed failed (a failed candidate has no fitness: the
            search gives it the worst fitness).
        fitness_std: ``[P]`` population std over seeds (0 for S = 1); NaN when any seed failed.
        member_status: ``[P][S]`` ``"ok"`` or ``"failed"``.
        failure_step: ``[P, S]`` int64 step at which the member failed, -1 if it did not.
        failure_reason: ``[P][S]`` why it failed (``""`` if it did not).
        curves: name -> ``[P, S, steps]`` per-step training values: ``loss`` (mean over the minibatch),
            ``accuracy`` (the loss's own implicit-reward accuracy), ``grad_norm`` (before clipping).
            NaN after a member failed.
        metrics: name -> ``[P, S]`` extra values from the fitness (e.g. the offline fitness's components).
        params: the parameters that were scored, ``[P * S, ...]`` on CPU: the last ones, or their moving
            average with ``TrainConfig.ema`` (a failed member keeps its last finite values).
        last_params: with ``TrainConfig.ema``, the last (not averaged) parameters; None otherwise.
        checkpoints: with ``TrainConfig.checkpoints = K > 1``, the scored parameters at each of the config's
            ``checkpoint_steps`` (K dicts laid out like ``params``, the last is ``params``); None otherwise.
        wall_s: seconds the run took, fitness included.
        timings: seconds spent training (``train``) and scoring (``score``).
    """

    names: tuple[str, ...]
    seeds: tuple[int, ...]
    fitness_per_seed: torch.Tensor
    fitness: torch.Tensor
    fitness_std: torch.Tensor
    member_status: tuple[tuple[str, ...], ...]
    failure_step: torch.Tensor
    failure_reason: tuple[tuple[str, ...], ...]
    curves: dict[str, torch.Tensor]
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)
    params: dict[str, torch.Tensor] | None = None
    last_params: dict[str, torch.Tensor] | None = None
    checkpoints: tuple[dict[str, torch.Tensor], ...] | None = None
    wall_s: float = math.nan
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def status(self) -> tuple[str, ...]:
        """``[P]``: ``"ok"`` when every seed of the candidate trained without failure, else ``"failed"``."""
        return tuple("ok" if all(s == "ok" for s in row) else "failed" for row in self.member_status)

    @property
    def reason(self) -> tuple[str, ...]:
        """``[P]``: the first failing seed's reason, prefixed with the seed (``""`` if ok)."""
        out = []
        for seeds_reason in self.failure_reason:
            first = next(((s, r) for s, r in zip(self.seeds, seeds_reason) if r), None)
            out.append("" if first is None else f"seed {first[0]}: {first[1]}")
        return tuple(out)

    def member_params(self, candidate: int, seed_index: int = 0) -> dict[str, torch.Tensor]:
        """Final parameters of member (candidate, seed_index) with N = 1 (``bench`` layout)."""
        if self.params is None:
            raise ValueError("params: this result kept no parameters")
        row = candidate * len(self.seeds) + seed_index
        return {k: v[row:row + 1] for k, v in self.params.items()}

    def to_frame(self):
        """A pandas DataFrame, one row per candidate, columns :data:`FRAME_COLUMNS`."""
        import pandas as pd

        first_step = [int(next((s for s in row if s >= 0), -1)) for row in self.failure_step.tolist()]
        return pd.DataFrame({
            "name": list(self.names), "fitness": self.fitness.tolist(), "fitness_std": self.fitness_std.tolist(),
            "status": list(self.status), "failure_step": first_step, "reason": list(self.reason),
        }, columns=list(FRAME_COLUMNS))
