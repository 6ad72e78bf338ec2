"""SearchConfig: every knob of a loss search in one frozen dataclass (read by the CLI and the docs).

How each candidate is trained and scored is not copied here: ``train`` holds the training protocol, a
:class:`symloss.train.TrainConfig` taken by name from ``symloss.train.PROTOCOLS`` (``protocol``, default
``"search"``) with overrides. Flat keyword arguments mix both (``LossSearch(steps=50, population=8)``):
:func:`split_fields` routes the TrainConfig field names into the protocol's overrides.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from symloss.bench import make_config
from symloss.expr import PRIMITIVES, SLOT_VARIABLES
from symloss.objectives import LOSSES
from symloss.train import FITNESS_NAMES, PROTOCOLS, TrainConfig
from symloss.validation import (
    ConfigError,
    check_bool,
    check_choice,
    check_range,
    check_tuple,
    did_you_mean,
)

Selection = Literal["parsimony", "nsga2"]
Executor = Literal["local", "ray"]
Method = Literal["gp", "es"]
BASELINE_GRIDS = ("none", "small", "full")
BaselineGrid = Literal["none", "small", "full"]
"""Names of the baseline grids (``symloss.search._baselines``): no baselines, a few tuned ones, the whole zoo grid."""


@dataclass(frozen=True, kw_only=True)
class SearchConfig:
    """Configuration of :class:`LossSearch` (Alfano et al.'s MPO slots searched by genetic programming)."""

    env: str = "hopper"
    """Benchmark environment: ``hopper`` or ``tla`` (three-legged Ant)."""
    dataset: str = "noisy"
    """Preference-dataset variant of the benchmark (``clean``, ``bt``, ``noisy``, ``mixed``, ...)."""
    n_pairs: int | None = None
    """Preference pairs in the dataset; >= 1. None: the paper's size (Hopper 5120, TLA 1280). A smaller
    dataset builds faster (a quick try), but the fitness it gives is noisier."""
    slots: tuple[str, ...] = ("mirror",)
    """Which slots evolve: any of ``mirror`` (m), ``link`` (g), ``imitation`` (psi)."""
    temporal: bool = False
    """Let evolved slots depend on training progress t in [0, 1] (TA-MPO)."""
    base: str = "dpo"
    """Zoo loss supplying beta, aggregation and the slots that do not evolve."""
    beta: float | None = None
    """beta in Alfano et al. (> 0); None keeps the base loss's value."""
    population: int = 8
    """Individuals per generation; >= 2 (tournament selection needs two)."""
    generations: int = 2
    """Generations after the initial one; >= 0 (the default search, the README's main job: 8 x 3 generations, each
    candidate trained with the ``search`` protocol on 2 seeds x 600 steps, the best third of each generation on 6
    seeds, beside 6 tuned baselines, then the held-out confirmation; about 10 minutes on 2 CPU cores)."""
    seed: int = 0
    """Seed of every random choice of the search (trees, variation, training seeds); >= 0."""
    primitives: tuple[str, ...] = tuple(PRIMITIVES)
    """Primitive operations trees may use (names in ``symloss.expr.PRIMITIVES``)."""
    constant_range: tuple[float, float] = (-1.0, 1.0)
    """Range (low, high) of random constants; low < high."""
    init_depth: tuple[int, int] = (1, 4)
    """Min and max depth of random initial trees; 0 <= min <= max <= max_height."""
    max_height: int = 8
    """Static limit on tree height for crossover and mutation; in [1, 12] (SymPy recursion stays safe)."""
    max_size: int = 40
    """Static limit on the number of nodes per tree; >= 1."""
    crossover_prob: float = 0.5
    """Probability that a pair of offspring is produced by crossover; in [0, 1]."""
    mutation_prob: float = 0.4
    """Probability that an offspring is mutated (subtree, node, shrink, constant); in [0, 1]."""
    constant_sigma: float = 0.1
    """Relative std of the Gaussian perturbation of constants in constant-tuning mutation; >= 0."""
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
    """Rows kept in the hall of fame; >= 1."""
    method: Method = "gp"
    """``gp``: genetic programming over the slots' expression trees; ``es``: the paper's method, OpenAI-ES over
    the monotone parametric mirror map, then symbolic distillation of the result (mirror slot only)."""
    rungs: tuple[str, ...] = ("seeds=6",)
    """Fidelities above the first (``train``), lowest first, for successive halving per generation: each is
    ``field=value:...`` overriding ``train`` (``seeds=6``: the same protocol on 6 seeds, reusing the 2 already
    trained) or a preset with overrides (``final:first_seed=0``). Empty: one fidelity."""
    promote_fraction: float = 1 / 3
    """Share of a generation's candidates at a rung (the best ones, at least one) promoted to the next rung;
    in (0, 1]."""
    baselines: BaselineGrid = "small"
    """Baselines trained on the same seeds and rungs as the candidates: ``none``, ``small`` (the zoo's robust
    and classic losses with a few tuned hyperparameters) or ``full`` (every zoo loss with its grid)."""
    confirm: int = 2
    """After the search: the top ``confirm`` discovered losses and the top ``confirm`` baselines are retrained on
    fresh seeds and start states with ``confirm_protocol`` and compared (report.md); 0 skips it."""
    confirm_protocol: str = "final"
    """Protocol spec of the held-out confirmation (default ``final``: 10 seeds from 100, start states from
    ``reset(seed=10000)``, none of which a search with seed < 10000 and fewer than 100 seeds uses)."""
    protocol: str = "search"
    """Named training protocol of symloss.train.PROTOCOLS (``search``: cheap, ranks candidates; ``final``:
    reports a loss); the TrainConfig options override its fields."""
    train: TrainConfig | None = None
    """How each candidate is trained and scored; None: ``TrainConfig.preset(protocol, eval_seed=seed)`` (the
    episodes start from ``reset(seed=seed + e)``). Its ``fitness`` must be a name: a callable goes to
    :class:`LossSearch`."""
    executor: Executor = "local"
    """Where generations are evaluated: ``local`` (one batched job) or ``ray`` (batched Ray tasks)."""
    ray_address: str | None = None
    """Address of a running Ray cluster; None starts a local one."""
    run_dir: str | None = None
    """Run directory for checkpoints, logs and artefacts; None writes nothing to disk."""

    def __post_init__(self) -> None:
        for name in ("slots", "primitives", "constant_range", "init_depth", "rungs"):
            if isinstance(getattr(self, name), list):  # e.g. from JSON; stored as a tuple (hashable, frozen)
                object.__setattr__(self, name, tuple(getattr(self, name)))
        check_choice("executor", self.executor, ("local", "ray"))
        check_choice("method", self.method, ("gp", "es"))
        if self.method == "es" and (tuple(self.slots) != ("mirror",) or self.temporal):
            raise ConfigError(f"method='es' with slots={tuple(self.slots)!r}, temporal={self.temporal!r}: the ES "
                              "searches the mirror map m(u) only; use slots=('mirror',) without temporal, or "
                              "method='gp'")
        check_choice("baselines", self.baselines, BASELINE_GRIDS)
        check_choice("protocol", self.protocol, PROTOCOLS)
        if self.train is None or isinstance(self.train, Mapping):  # the device is the Ray workers' if remote
            overrides = {"eval_seed": self.seed, **(self.train or {})}
            train = TrainConfig.preset(self.protocol, env=self.env, device_here=self.executor == "local",
                                       **overrides)
            object.__setattr__(self, "train", train)
        elif not isinstance(self.train, TrainConfig):
            raise ConfigError(f"train={self.train!r}: must be a TrainConfig, a dict of its fields or None")
        self._check_names()
        self._check_numbers()
        self._check_held_out()

    def _check_names(self) -> None:
        make_config(self.env, self.dataset, **self.dataset_overrides)
        for name, accepted in (("slots", SLOT_VARIABLES), ("primitives", PRIMITIVES)):
            value = getattr(self, name)
            if not isinstance(value, tuple) or not value:
                raise ConfigError(f"{name}={value!r}: must be a non-empty tuple of names from "
                                  f"{list(accepted)}; e.g. {name}=({next(iter(accepted))!r},)")
            for item in value:
                check_choice(name, item, accepted)
        check_choice("base", self.base, LOSSES)
        check_choice("selection", self.selection, ("parsimony", "nsga2"))
        check_choice("fitness", self.train.fitness, FITNESS_NAMES, fix="(a callable goes to LossSearch(fitness=...))")
        for name in ("temporal", "seed_zoo"):
            check_bool(name, getattr(self, name))
        for name in ("ray_address", "run_dir"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name}={getattr(self, name)!r}: must be a string or None")

    def _check_numbers(self) -> None:
        check_range("population", self.population, lo=2, integer=True, why="tournament selection needs two")
        check_range("elite", self.elite, lo=0, hi=self.population - 1, integer=True,
                    why="fewer than population", fix="lower elite or raise population")
        for name, lo in (("generations", 0), ("seed", 0), ("max_size", 1), ("hall_of_fame", 1)):
            check_range(name, getattr(self, name), lo=lo, integer=True)
        check_range("tournament_size", self.tournament_size, lo=2, integer=True,
                    why="a tournament compares at least two")
        check_range("max_height", self.max_height, lo=1, hi=12, integer=True,
                    why="deeper trees risk SymPy's recursion limit")
        for name in ("crossover_prob", "mutation_prob"):
            check_range(name, getattr(self, name), lo=0, hi=1, why="a probability")
        check_range("parsimony", self.parsimony, lo=0)
        check_range("promote_fraction", self.promote_fraction, lo=0, lo_open=True, hi=1)
        check_range("confirm", self.confirm, lo=0, integer=True)
        check_range("constant_sigma", self.constant_sigma, lo=0)
        if self.beta is not None:
            check_range("beta", self.beta, lo=0, lo_open=True, fix="or None for the base loss's beta")
        low, high = check_tuple("constant_range", self.constant_range, length=2, what="low, high",
                                example="(-1.0, 1.0)")
        if not low < high:
            raise ConfigError(f"constant_range={self.constant_range!r}: must be (low, high) with low < high; "
                              "e.g. (-1.0, 1.0)")
        low, high = check_tuple("init_depth", self.init_depth, length=2, integer=True, what="min, max",
                                example="(1, 4)")
        if not 0 <= low <= high <= self.max_height:
            raise ConfigError(f"init_depth={self.init_depth!r}: must be (min, max) with 0 <= min <= max <= "
                              f"max_height={self.max_height}; e.g. (1, 4)")

    def rung_protocols(self) -> list[TrainConfig]:
        """The protocol of each rung, lowest first: ``train``, then each of ``rungs`` (see the field); every
        rung keeps ``train``'s device, dtype, threads, fitness and start states unless its spec sets them."""
        if not isinstance(self.rungs, tuple) or not all(isinstance(r, str) for r in self.rungs):
            raise ConfigError(f"rungs={self.rungs!r}: must be a tuple of protocol specs, e.g. ('seeds=6',)")
        out = [self.train]
        for spec in self.rungs:
            out.append(self._protocol_from(spec, "rungs"))
        return out

    def _check_held_out(self) -> None:
        """Every rung spec parses, and the confirmation's seeds and start states are ones no rung uses."""
        confirm = self.confirmation_protocol()
        if self.confirm == 0:
            return
        seeds = set(confirm.seed_list)
        starts = set(confirm.start_state_seeds)
        for i, rung in enumerate(self.rung_protocols()):
            overlap = seeds & set(rung.seed_list)
            if overlap:
                raise ConfigError(f"confirm_protocol={self.confirm_protocol!r} trains on seed {min(overlap)}, which "
                                  f"rung {i} also uses: give the confirmation fresh seeds (e.g. "
                                  f"'{self.confirm_protocol.split(':')[0]}:first_seed={max(rung.seed_list) + 1000}')")
            overlap = starts & set(rung.start_state_seeds)
            if overlap:
                raise ConfigError(f"confirm_protocol={self.confirm_protocol!r} starts an episode from reset(seed="
                                  f"{min(overlap)}), which rung {i} also uses: give it fresh start states (e.g. "
                                  f"'...:eval_seed={rung.start_state_seeds.stop + 10_000}') or another search seed")

    def confirmation_protocol(self) -> TrainConfig:
        """The protocol of the held-out confirmation: ``confirm_protocol`` with ``train``'s device and threads.
        Where the spec does not set ``first_seed`` / ``eval_seed`` and a rung already uses the preset's seeds or
        start states (``protocol="final"``), they move past every rung's, so the confirmation stays held out."""
        given = self._protocol_from(self.confirm_protocol, "confirm_protocol", inherit_start=False)
        rungs = [self.train] + [self._protocol_from(spec, "rungs") for spec in self.rungs]
        moved = {}
        named = _spec_fields(self.confirm_protocol)
        if "first_seed" not in named and any(
                set(given.seed_list) & set(r.seed_list) for r in rungs):
            moved["first_seed"] = max(max(r.seed_list) for r in rungs) + 1
        if "eval_seed" not in named and any(set(given.start_state_seeds) & set(r.start_state_seeds) for r in rungs):
            moved["eval_seed"] = max(r.start_state_seeds.stop for r in rungs)
        return dataclasses.replace(given, device_here=False, **moved) if moved else given

    def _protocol_from(self, spec: str, field: str, *, inherit_start: bool = True) -> TrainConfig:
        if not isinstance(spec, str) or not spec.strip():
            raise ConfigError(f"{field}: {spec!r} must be a protocol spec such as 'seeds=6' or 'final'")
        head = spec.split(":", 1)[0]
        keep = {"device": self.train.device, "dtype": self.train.dtype, "threads": self.train.threads,
                "fitness": self.train.fitness}
        try:
            if "=" in head:  # overrides of train
                given = TrainConfig.from_spec(f"search:{spec}", env=self.env, device_here=False)
                changed = {name: getattr(given, name) for name in _spec_fields(spec)}
                return dataclasses.replace(self.train, device_here=False, **changed)
            base = {"eval_seed": self.train.eval_seed} if inherit_start else {}
            given = TrainConfig.from_spec(spec, env=self.env, device_here=False)
            named = _spec_fields(spec)
            return dataclasses.replace(given, device_here=False,
                                       **{k: v for k, v in {**keep, **base}.items() if k not in named})
        except ConfigError as exc:
            raise ConfigError(f"{field}: {exc}") from None

    @property
    def dataset_overrides(self) -> dict[str, Any]:
        """The dataset's ``BenchConfig`` fields set here (``n_pairs``)."""
        return {} if self.n_pairs is None else {"n_pairs": self.n_pairs}

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON values: tuples as lists, ``train`` as a dict of its fields."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self) if f.name != "train"} | {"train": self.train.to_dict()}

    def flat(self) -> dict[str, Any]:
        """:meth:`to_dict` with the protocol's fields beside the search's (their names are distinct)."""
        data = self.to_dict()
        return {**data, **data.pop("train")}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchConfig:
        """The config of ``to_dict()`` or ``flat()`` output, or of flat keyword arguments: TrainConfig field
        names (``steps``, ``lr``, ...; the format of run directories before ``train`` existed) override the
        protocol's. Lists become tuples; unknown keys are refused by name."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"SearchConfig: expected a dict of fields, got {type(data).__name__}")
        search, train = split_fields(data)
        if "train" not in data and all(k in data for k in FLAT_PROTOCOL_KEYS):
            train.setdefault("action", "greedy")  # a run directory from before the action rules: greedy bins
        if train:
            if isinstance(search.get("train"), TrainConfig):
                raise ConfigError(f"{sorted(train)[0]}: give the protocol as train=TrainConfig(...) or its fields "
                                  "as keywords, not both")
            search["train"] = {**(search.get("train") or {}), **train}
        return cls(**search)


def _spec_fields(spec: str) -> set[str]:
    """The field names a protocol spec sets: ``"final:seeds=8:eps=1e-5"`` -> {"seeds", "eps"}."""
    return {part.partition("=")[0].strip() for part in spec.split(":") if "=" in part}


FLAT_PROTOCOL_KEYS = ("steps", "batch_size", "lr", "episodes", "seeds", "fitness", "device")
"""The protocol fields that config.json held flat before ``SearchConfig.train`` existed (all of them, always)."""


def split_fields(kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Flat keyword arguments as (SearchConfig fields, TrainConfig overrides); a name of neither is refused
    with a suggestion."""
    search_names = [f.name for f in dataclasses.fields(SearchConfig)]
    train_names = [f.name for f in dataclasses.fields(TrainConfig)]
    unknown = sorted(set(kwargs) - set(search_names) - set(train_names))
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown SearchConfig field{did_you_mean(unknown[0], search_names + train_names)}")
    return ({k: v for k, v in kwargs.items() if k in search_names},
            {k: v for k, v in kwargs.items() if k in train_names})


RESUMABLE_CHANGES = frozenset({"generations", "run_dir", "device", "executor", "ray_address"})
"""Fields that may differ between a run's stored config and the config that resumes it."""
