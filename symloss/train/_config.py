"""Configuration of the population trainer (``TrainConfig``) and the named training budgets.

A budget is the part of the configuration that sets the cost of scoring one candidate: optimisation
steps, minibatch size (preference pairs per step) and evaluation episodes. ``search`` is the cheap
budget used inside the loss search, ``final`` the one used to report a found loss; the rank correlation
between the two is measured by ``benchmarks/budget_correlation.py`` (results in benchmarks/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Literal

from symloss.validation import (
    ConfigError,
    check_bool,
    check_choice,
    check_device,
    check_range,
    check_tuple,
    did_you_mean,
)

__all__ = ["BUDGETS", "FITNESS_NAMES", "Budget", "TrainConfig"]

FITNESS_NAMES: tuple[str, ...] = ("return", "offline")
"""Built-in fitness functions (see ``symloss.train._fitness``)."""


@dataclass(frozen=True, kw_only=True)
class Budget:
    """The cost knobs of scoring one candidate."""

    steps: int
    """Optimisation steps per member."""
    batch_size: int
    """Preference pairs per minibatch (shared by all members with the same seed)."""
    episodes: int
    """E, evaluation episodes per member for the ``return`` fitness."""


BUDGETS: dict[str, Budget] = {
    "search": Budget(steps=100, batch_size=32, episodes=5),
    "final": Budget(steps=1500, batch_size=64, episodes=10),
}
"""Named budgets. ``search`` (the ``TrainConfig`` defaults) is chosen from benchmarks/RESULTS.md ("Budget
correlation", Hopper noisy, 32 random valid mirror maps, lr 1e-4, three replicates): the return ranking after
100 steps predicts the one after 400 with Spearman rho 0.57-0.89, while 25-50 steps give unstable rankings
(rho -0.7 to 0.7), so 100 steps is the cheapest safe budget; spend more compute on candidates and seeds.
``final`` has the steps, batch and episodes of paper_repro/bench_baselines.py (1500 x 64 pairs, 10 episodes);
that script also uses lr 3e-4 and no clipping, which are ``TrainConfig`` fields, not part of a budget."""


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Hyperparameters of :class:`~symloss.train.PopulationTrainer`; defaults are the ``search`` budget.

    Seeds: every member starts exactly at the SFT reference; seed s only sets the order of minibatches,
    drawn with replacement from ``torch.Generator().manual_seed(s)``. All candidates with the same seed see
    the same minibatches (common random numbers), so differences between candidates are not data noise.
    """

    steps: int = BUDGETS["search"].steps
    """Optimisation steps per member; >= 1. Progress t = step / steps is passed to the objectives."""
    batch_size: int = BUDGETS["search"].batch_size
    """Preference pairs per minibatch; >= 1 (capped at the training split's size)."""
    episodes: int = BUDGETS["search"].episodes
    """E, evaluation episodes per member for the ``return`` fitness; >= 1."""
    lr: float = 1e-4
    """Adam learning rate; > 0."""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam (beta1, beta2), each in [0, 1)."""
    eps: float = 1e-8
    """Adam epsilon; > 0."""
    max_grad_norm: float | None = 1.0
    """Per-member gradient-norm clip (L2 over all of a member's parameters); None disables it."""
    fitness: Literal["return", "offline"] | Callable[..., Any] = "return"
    """``return``: mean return over ``episodes`` simulator episodes (the paper); ``offline``: held-out
    preference accuracy and expert log-likelihood, no simulator; or a callable ``(spec, params, context)
    -> Tensor[N]`` (see ``symloss.train._fitness``)."""
    offline_ll_weight: float = 0.5
    """w in the offline fitness (1 - w) * accuracy + w * (1 + ll / log K); in [0, 1]."""
    eval_seed: int = 0
    """Episode e of every member starts from ``reset(seed=eval_seed + e)`` (common random numbers)."""
    device: str = "cpu"
    """Torch device: ``cpu``, ``cuda`` or ``cuda:<index>``; the same code runs on both."""
    dtype: Literal["float32", "float64"] = "float32"
    """Floating-point type of parameters and log-probabilities."""
    cuda_graph: bool = True
    """On CUDA, record one training step as a CUDA graph after 3 eager steps and replay it: the per-candidate
    loss kernels then launch without Python (3.4x faster than eager at P = 64 on an H100). Needs losses whose
    Python code does not branch on values (every plain MirrorLoss); subclasses that override ``__call__``
    train eagerly, and a loss that raises after the warm-up is reported as a non-finite loss. Ignored on CPU."""
    max_members_per_chunk: int | None = None
    """Most members (P x S policies) trained at once; None: from ``memory_budget_mb``."""
    memory_budget_mb: float | None = None
    """Memory a chunk may use, in MiB; None: 40 on CPU (small chunks are cache-friendly and faster), half
    the free GPU memory on CUDA."""

    def __post_init__(self) -> None:
        if isinstance(self.betas, list):  # e.g. from JSON; stored as a tuple (hashable, frozen)
            object.__setattr__(self, "betas", tuple(self.betas))
        for name in ("steps", "batch_size", "episodes"):
            check_range(name, getattr(self, name), lo=1, integer=True)
        check_range("eval_seed", self.eval_seed, lo=0, integer=True)
        for name in ("lr", "eps"):
            check_range(name, getattr(self, name), lo=0, lo_open=True)
        for name in ("max_grad_norm", "memory_budget_mb"):
            if getattr(self, name) is not None:
                check_range(name, getattr(self, name), lo=0, lo_open=True, fix="or None")
        if self.max_members_per_chunk is not None:
            check_range("max_members_per_chunk", self.max_members_per_chunk, lo=1, integer=True,
                        fix="or None")
        for i, beta in enumerate(check_tuple("betas", self.betas, length=2, what="Adam's beta1, beta2",
                                             example="(0.9, 0.999)")):
            check_range(f"betas[{i}]", beta, lo=0, hi=1, hi_open=True)
        check_range("offline_ll_weight", self.offline_ll_weight, lo=0, hi=1)
        if not callable(self.fitness):
            check_choice("fitness", self.fitness, FITNESS_NAMES,
                         fix="or a callable (spec, params, context) -> Tensor[N]")
        check_choice("dtype", self.dtype, ("float32", "float64"))
        check_bool("cuda_graph", self.cuda_graph)
        check_device("device", self.device)

    @classmethod
    def from_budget(cls, budget: str, **overrides: Any) -> TrainConfig:
        """A config with a named budget's ``steps``, ``batch_size`` and ``episodes``; ``overrides`` win."""
        check_choice("budget", budget, sorted(BUDGETS))
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise ConfigError(f"{unknown[0]}: unknown TrainConfig field{did_you_mean(unknown[0], known)}")
        b = BUDGETS[budget]
        return cls(**{"steps": b.steps, "batch_size": b.batch_size, "episodes": b.episodes, **overrides})

    @property
    def torch_dtype(self) -> Any:
        """The ``torch.dtype`` of ``dtype``."""
        import torch

        return getattr(torch, self.dtype)
