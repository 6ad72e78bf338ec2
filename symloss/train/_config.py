"""Configuration of the population trainer (``TrainConfig``) and the named training budgets.

A budget is the part of the configuration that sets the cost of scoring one candidate: optimisation
steps, minibatch size (preference pairs per step) and evaluation episodes. ``search`` is the cheap
budget used inside the loss search, ``final`` the one used to report a found loss; the rank correlation
between the two is measured by ``benchmarks/budget_correlation.py`` (results in benchmarks/RESULTS.md).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Literal

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


def _positive_int(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}={value!r}: must be an integer >= {minimum}")


def _positive_float(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name}={value!r}: must be a number > 0")


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
    threads: int | None = None
    """CPU threads for training (torch) and evaluation (simulator); >= 1. None: automatic, the CPUs this
    process may use minus those other processes keep busy, chosen again every 0.5 s (``symloss.train._cpu``);
    never more than the caller's ``torch.get_num_threads()``. The caller's setting is restored after ``fit``."""

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "episodes"):
            _positive_int(name, getattr(self, name))
        _positive_int("eval_seed", self.eval_seed, minimum=0)
        for name in ("lr", "eps"):
            _positive_float(name, getattr(self, name))
        if self.max_grad_norm is not None:
            _positive_float("max_grad_norm", self.max_grad_norm)
        if self.memory_budget_mb is not None:
            _positive_float("memory_budget_mb", self.memory_budget_mb)
        if self.max_members_per_chunk is not None:
            _positive_int("max_members_per_chunk", self.max_members_per_chunk)
        if self.threads is not None:
            _positive_int("threads", self.threads)
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas={self.betas!r}: must be two numbers in [0, 1), e.g. (0.9, 0.999)")
        if not 0 <= self.offline_ll_weight <= 1:
            raise ValueError(f"offline_ll_weight={self.offline_ll_weight!r}: must lie in [0, 1]")
        if not callable(self.fitness) and self.fitness not in FITNESS_NAMES:
            close = difflib.get_close_matches(str(self.fitness), FITNESS_NAMES, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"fitness={self.fitness!r}: accepted {list(FITNESS_NAMES)} or a callable "
                             f"(spec, params, context) -> Tensor[N]{hint}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype={self.dtype!r}: accepted ['float32', 'float64']")
        device = str(self.device)
        if not (device == "cpu" or device == "cuda" or device.startswith("cuda:")):
            raise ValueError(f"device={self.device!r}: accepted 'cpu', 'cuda' or 'cuda:<index>'")

    @classmethod
    def from_budget(cls, budget: str, **overrides: Any) -> TrainConfig:
        """A config with a named budget's ``steps``, ``batch_size`` and ``episodes``; ``overrides`` win."""
        if budget not in BUDGETS:
            close = difflib.get_close_matches(str(budget), BUDGETS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"budget={budget!r}: accepted {sorted(BUDGETS)}{hint}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            close = difflib.get_close_matches(unknown[0], known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"{unknown[0]}: unknown TrainConfig field{hint}")
        b = BUDGETS[budget]
        return cls(**{"steps": b.steps, "batch_size": b.batch_size, "episodes": b.episodes, **overrides})

    @property
    def torch_dtype(self) -> Any:
        """The ``torch.dtype`` of ``dtype``."""
        import torch

        return getattr(torch, self.dtype)
