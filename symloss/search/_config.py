"""SearchConfig: every knob of a loss search in one frozen dataclass (read by the CLI and the docs)."""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any, Literal

from symloss.expr import PRIMITIVES, SLOT_VARIABLES
from symloss.objectives import LOSSES

Selection = Literal["parsimony", "nsga2"]
Executor = Literal["local", "ray"]


def _choice(name: str, value: Any, accepted: tuple[str, ...] | list[str]) -> None:
    if value not in accepted:
        close = difflib.get_close_matches(str(value), list(accepted), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{name}={value!r}: accepted {list(accepted)}{hint}")


@dataclass(frozen=True, kw_only=True)
class SearchConfig:
    """Configuration of :class:`LossSearch` (Alfano et al.'s MPO slots searched by genetic programming)."""

    env: str = "hopper"
    """Benchmark environment: ``hopper`` or ``tla`` (three-legged Ant)."""
    dataset: str = "noisy"
    """Preference-dataset variant of the benchmark (``clean``, ``bt``, ``noisy``, ``mixed``, ...)."""
    slots: tuple[str, ...] = ("mirror",)
    """Which slots evolve: any of ``mirror`` (m), ``link`` (g), ``imitation`` (psi)."""
    temporal: bool = False
    """Let evolved slots depend on training progress t in [0, 1] (TA-MPO)."""
    base: str = "dpo"
    """Zoo loss supplying beta, aggregation and the slots that do not evolve."""
    beta: float | None = None
    """beta in Alfano et al. (> 0); None keeps the base loss's value."""
    population: int = 16
    """Individuals per generation; >= 2 (tournament selection needs two)."""
    generations: int = 4
    """Generations after the initial one; >= 0."""
    seed: int = 0
    """Seed of every random choice of the search (trees, variation, training seeds)."""
    primitives: tuple[str, ...] = tuple(PRIMITIVES)
    """Primitive operations trees may use (names in ``symloss.expr.PRIMITIVES``)."""
    constant_range: tuple[float, float] = (-1.0, 1.0)
    """Range of random constants."""
    init_depth: tuple[int, int] = (1, 4)
    """Min and max depth of random initial trees."""
    max_height: int = 8
    """Static limit on tree height for crossover and mutation (SymPy recursion stays safe below ~10)."""
    max_size: int = 40
    """Static limit on the number of nodes per tree."""
    crossover_prob: float = 0.5
    """Probability that a pair of offspring is produced by crossover; in [0, 1]."""
    mutation_prob: float = 0.4
    """Probability that an offspring is mutated (subtree, node, shrink, constant); in [0, 1]."""
    constant_sigma: float = 0.1
    """Relative std of the Gaussian perturbation of constants in constant-tuning mutation."""
    tournament_size: int = 3
    """Tournament size for parsimony selection; >= 2."""
    selection: Selection = "parsimony"
    """``parsimony`` (tournament on fitness - parsimony * complexity) or ``nsga2`` on (fitness, complexity)."""
    parsimony: float = 0.001
    """Fitness penalty per node of complexity in parsimony selection; >= 0."""
    elite: int = 2
    """Best individuals copied unchanged into the next generation; 0 <= elite < population."""
    seed_zoo: bool = True
    """Put the zoo's maps (DPO's u, ORPO's log-odds, ...) into the initial population."""
    hall_of_fame: int = 20
    """Rows kept in the hall of fame."""
    fitness: str = "return"
    """Built-in fitness of the trainer: ``return`` (simulator) or ``offline``; a callable may be passed to
    :class:`LossSearch` instead."""
    seeds: int = 2
    """Training seeds per candidate (fitness is their mean; std is reported). Greedy returns are very
    sensitive to small parameter changes (benchmarks/RESULTS.md), so more than one seed pays off."""
    steps: int = 100
    """Training steps per candidate (the trainer's ``search`` budget: B=100 predicts 4B with rho ~0.6)."""
    batch_size: int = 32
    """Preference pairs per training step."""
    lr: float = 1e-4
    """Adam learning rate of the trained policies (the value of the budget study); > 0."""
    episodes: int = 5
    """Evaluation episodes per trained policy (``return`` fitness)."""
    device: str = "cpu"
    """Torch device of the trainer: ``cpu`` or ``cuda``."""
    executor: Executor = "local"
    """Where generations are evaluated: ``local`` (one batched job) or ``ray`` (batched Ray tasks)."""
    ray_address: str | None = None
    """Address of a running Ray cluster; None starts a local one."""
    run_dir: str | None = None
    """Run directory for checkpoints, logs and artefacts; None writes nothing to disk."""

    def __post_init__(self) -> None:
        for slot in self.slots:
            _choice("slots", slot, tuple(SLOT_VARIABLES))
        if not self.slots:
            raise ValueError("slots=(): evolve at least one of ['mirror', 'link', 'imitation']")
        _choice("base", self.base, tuple(LOSSES))
        _choice("selection", self.selection, ("parsimony", "nsga2"))
        _choice("executor", self.executor, ("local", "ray"))
        if not self.primitives:
            raise ValueError(f"primitives=(): empty primitive set; give some of {list(PRIMITIVES)}")
        for name in self.primitives:
            _choice("primitives", name, tuple(PRIMITIVES))
        if self.population < 2:
            raise ValueError(f"population={self.population}: must be >= 2 (tournament selection needs two)")
        checks = {
            "generations": self.generations >= 0, "tournament_size": self.tournament_size >= 2,
            "elite": 0 <= self.elite < self.population, "parsimony": self.parsimony >= 0,
            "crossover_prob": 0 <= self.crossover_prob <= 1, "mutation_prob": 0 <= self.mutation_prob <= 1,
            "seeds": self.seeds >= 1, "steps": self.steps >= 1, "batch_size": self.batch_size >= 1,
            "episodes": self.episodes >= 1, "max_height": 1 <= self.max_height <= 12,
            "max_size": self.max_size >= 1, "hall_of_fame": self.hall_of_fame >= 1,
            "constant_sigma": self.constant_sigma >= 0, "lr": self.lr > 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)!r}: out of range; see SearchConfig.{name}")
        if self.beta is not None and not self.beta > 0:
            raise ValueError(f"beta={self.beta!r}: must be > 0")
        low, high = self.init_depth
        if not 0 <= low <= high <= self.max_height:
            raise ValueError(f"init_depth={self.init_depth}: need 0 <= min <= max <= max_height")
        if not self.constant_range[0] < self.constant_range[1]:
            raise ValueError(f"constant_range={self.constant_range}: need low < high")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchConfig:
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValueError(f"SearchConfig: unknown field(s) {unknown}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


RESUMABLE_CHANGES = frozenset({"generations", "run_dir", "device", "executor", "ray_address"})
"""Fields that may differ between a run's stored config and the config that resumes it."""
