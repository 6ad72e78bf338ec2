"""The training protocol: how a candidate loss is trained and scored (``TrainConfig``), and its named presets.

A protocol is one :class:`TrainConfig`: optimisation steps, minibatch size (preference pairs per step),
learning rate, clipping, training seeds, evaluation episodes and their start states, the fitness.
:data:`PROTOCOLS` names the presets, the single place where they are defined; the search, ``symloss eval``,
paper_repro and the benchmarks all take one by name with explicit overrides:
``TrainConfig.preset("final", seeds=10)``. ``TrainConfig()`` trains at the ``search`` budget and scores plainly
(last weights, minibatches with replacement). To change a preset, edit :data:`SEARCH_PROTOCOL` or
:data:`FINAL_PROTOCOL` below (nothing else copies their values).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import InitVar, dataclass, fields, make_dataclass, replace
from typing import Any, Literal

from symloss.bench import check_env_name
from symloss.validation import (
    ConfigError,
    check_bool,
    check_choice,
    check_device,
    check_range,
    check_tuple,
    did_you_mean,
)

__all__ = ["ENV_PROTOCOL", "FINAL_PROTOCOL", "FITNESS_NAMES", "PROTOCOLS", "SEARCH_PROTOCOL", "STORED_BEFORE",
           "TrainConfig"]

FITNESS_NAMES: tuple[str, ...] = ("return", "offline")
"""Built-in fitness functions (see ``symloss.train.FITNESS``)."""

SEARCH_PROTOCOL: dict[str, Any] = {"steps": 600, "batch_size": 64, "lr": 3e-4, "max_grad_norm": 1.0, "seeds": 2,
                                   "episodes": 8, "action": "greedy", "temperature": 0.25, "sampling": "epochs",
                                   "ema": 0.995, "checkpoints": 4, "start_states": "per_seed"}
"""``search``, the fidelity that ranks candidates inside the loss search: the training and scoring rule of
``final`` on 2 seeds (0, 1) and 8 start states per seed (``reset(seed=eval_seed + 8 s + e)``, the search's own;
every candidate on the same 8 for a common seed), 1/5 of ``final``'s training and 1/10 of its scoring. Measured (issue 12; benchmarks/RESULTS.md "Shuffled epochs"), 21 zoo
losses, trained apart on fresh seeds: its loss means rank like ``final``'s with Spearman rho 0.95 / 0.95 on Hopper
``mixed`` (two final runs) and 0.83 / 0.86 on ``noisy``; under the tempered mean action instead of greedy bins,
0.88-0.89 and 0.74-0.77, so the search scores greedy bins like ``final``. (Before shuffled epochs the search
used the mean rule on the last weights: rho 0.87 on ``noisy`` against the old ``final``, 0.46-0.84 on ``mixed``.)
These figures were measured with shared start states. With states per seed (16 states per candidate instead of 8;
benchmarks/RESULTS.md "Replicates under the per-seed presets"), trained apart on the 24 losses of a per-seed final
run: rho 0.972 on Hopper ``noisy`` and 0.938 on ``mixed``; on the zoo 0.91-0.99 against every per-seed and shared
Hopper final run but one (0.83 against the ``noisy`` run whose DiscoPOP seeds all trained). On TLA ``noisy``, trained
apart, it ranks the zoo with rho 0.68-0.78 against four final runs (below the issue's 0.8; Pearson 0.93-0.98, and
97-99% of the pairs of losses more than 10% apart ordered alike): half of TLA's zoo lies within 6%. Scored on the
first 500 steps of 16 states per seed (``horizon=500, episodes=16``, the same cost), it ranks like two 500-step
finals with rho 0.95 in two runs and like the 1000-step finals with 0.87-0.91, so on TLA the search takes those fields
(:data:`ENV_PROTOCOL`).
``TrainConfig()`` trains at this budget but scores plainly (last weights, minibatches with replacement)."""

FINAL_PROTOCOL: dict[str, Any] = {"steps": 600, "batch_size": 64, "lr": 3e-4, "max_grad_norm": 1.0, "seeds": 10,
                                  "first_seed": 100, "episodes": 16, "eval_seed": 10_000, "action": "greedy",
                                  "sampling": "epochs", "ema": 0.995, "checkpoints": 4, "start_states": "per_seed"}
"""``final``, the protocol that reports a loss (``symloss eval``, paper_repro, a search's confirmation): 600 Adam
steps x 64 pairs at lr 3e-4 with clipping 1.0, minibatches in **shuffled epochs** (``sampling``: every pair seen
7 or 8 times, the seeds differ only in order), scored by the greedy bins of the **averaged weights** (``ema`` 0.995)
at **4 late checkpoints** (steps 375, 450, 525, 600; the score is the mean of the four), 10 seeds x 16 start
states **drawn per seed** (``start_states``: seed s plays ``reset(seed=10000 + 16 s + e)``, 160 states in all, every
loss on the same 16 for a common seed, so comparisons stay paired).

Why start states per seed (benchmarks/RESULTS.md "The start-state set, not the seeds, moved run 55000"): on Hopper
``noisy`` the same 8 trainings of DPO beta 1 score 1215 on one set of 16 shared start states and 888 on another
(seeds spread by about 60): for the losses that train, whether a policy falls from a start state is a property of
the loss and the state (the seed halves agree on it with r 0.94-0.98), so 16 shared states give each loss an offset
of about 10% of its mean that every seed shares and no seed count removes. One such set reordered the zoo (a run's
split-half 0.71; its trainings on another run's states ranked like that run, rho 0.95-0.97). Drawn per seed, the
offset averages over 160 states at the same cost; the g-study of the stored runs predicts a run's reliability G at
10 seeds up from 0.95-0.99 to 0.98-0.99 (``noisy`` 0.95-0.96 -> 0.98-0.99, TLA 0.98-0.99 -> 0.99). Measured with
states per seed, two runs of 8 fresh seeds per dataset ("Replicates under the per-seed presets"; split-half: two
halves of 4 seeds, each on its seeds' own 16 states; the zoo):

- TLA ``noisy``: split-half 0.84 / 0.87; the two runs rank alike with Spearman 0.88 (Pearson 0.993), every one of
  the 134 pairs of losses more than 10% apart ordered alike; two disjoint 8-seed parts of the 16 pooled seeds 0.90.
  12 of the 21 zoo losses lie within 6% of each other, and their order is what moves. Scored on the first 500
  steps of 32 states per seed instead (``horizon=500, episodes=32``, the same scoring cost), two runs gave
  split-half 0.96 / 0.94 and 2.9 / 3.8 seeds for 10%, and agree with each other 0.97, so on TLA ``final`` takes
  those fields (:data:`ENV_PROTOCOL`); ``preset("final")`` without an environment keeps the whole episode.
- Hopper ``noisy``: split-half 0.92 / 0.96 (the four shared runs 0.96, 0.91, 0.90, 0.69), G at 10 seeds 0.986 /
  0.994 (shared 0.95-0.96); the two runs agree 0.875, 0.973 without DiscoPOP, which trains on some seeds and
  collapses on others (7 of 8 trained in one run, 0 of 8 in the other); pooled 8-seed parts 0.965.
- Hopper ``mixed``: split-half 0.97 (24 losses) and 0.997 (15); the two runs agree 0.993 on their 15 common losses.

The seed counts in the list below were computed on a run's own shared states. A difference that must hold on fresh
states needs, with states per seed, measured (median over the losses that move): TLA 8.0 / 10.2 at 1000 steps
(2.9 / 3.8 at TLA's 500-step horizon) and Hopper ``noisy`` 3.6 / 2.8 (the zoo); ``mixed`` 14.6 on the zoo (6.0 / 7.2
on its first 15 losses), so 10 seeds resolve about 12% there, and 8 late checkpoints instead of 4 do not change it
with states per seed (13.6 in a run of fresh seeds, 13.3 for 4 of its 8 checkpoints); ``clean`` 8.6 on the first 15 and 153 on the zoo in a second run, where several losses hop on some
seeds and fall on others (loss x seed sd 273).

Why the rest (issue 12; benchmarks/RESULTS.md "Shuffled epochs" and "Replications on fresh seeds", 21 zoo losses, 8
fresh seeds x 16 fresh shared start states per run, two disjoint runs per dataset; the figures are split-half rank
reliability and the seeds a 10% difference between two losses that train needs, median over the losses that move
more than 10% from the untrained reference):

- Hopper ``mixed``: 0.96 / 0.92 and 11.5 / 11.8 seeds (32 start states would give 10.0 / 10.6, projected); the
  previous ``final`` (greedy bins of the last weights, minibatches with replacement) on the same start states:
  0.86 / 0.79 and 152 / 154 seeds; averaged late checkpoints with replacement: 0.93 / 0.95 and 16 / 21.
- Hopper ``noisy``: 0.91 / 0.96 and 6.5 / 1.7 seeds; the previous ``final``: 0.81-0.82 and 73-101; averaged late
  checkpoints with replacement: 0.70-0.81 and 40-85 (why they were not adopted before). Two later runs on fresh
  seeds and start states: 0.90 and 0.71, 2.0 and 3.3 seeds; the 0.71 run's start-state set, not its seeds, moved
  it (above).
- TLA ``noisy``: 0.89 and 4.5 seeds in one run, 0.81 and 4.9 in a replicate on fresh seeds and start states
  (the two runs' loss means agree with rho 0.75: half the zoo ties within 10% on TLA, 0.91 over the losses that
  move); averaged late checkpoints with replacement gave 0.80 and 16, the previous ``final`` 0.87-0.88 and 15-32.
- Replicates on fresh seeds (24 losses): ``mixed`` 12.9 / 10.4 seeds; 8 checkpoints instead of 4 give 9.6 / 5.2
  at twice the scoring but nothing on ``noisy`` (2.5 against 2.0 seeds, split-half 0.89 against 0.90 on the zoo)
  and would take TLA to about 3.5 min per loss, so K stays 4; 12 start states instead of 16 lower the split-half
  on ``noisy`` (0.66) and TLA (0.72).
- A control with replacement on the same references, seeds and start states: 18.7 (``mixed``) and 23.5
  (``noisy``) seeds against 11.5 and 6.5 in shuffled epochs. On Hopper ``clean`` epochs gave no gain (median sd over
  seeds 143 against 145): clean labels have no flipped pairs for a seed to reweight.
- Shuffled epochs change the noise, not the ranking: the zoo's means under the same rule agree with the runs
  with replacement (rho 0.95-0.97 on ``mixed``, 0.87-0.93 on ``noisy``), and the two epoch runs agree with each
  other (0.98 / 0.97). The rule ranks ``mixed`` unlike the last weights' greedy return (rho 0.45-0.61): many
  losses peak mid-training and fall by step 600 at a seed-dependent time, and this rule scores the averaged
  policy over the second half of training, so on ``mixed`` "better" now means better over the second half.
- Cost on the 2-core CPU, one thread beside other jobs: 36-62 s of training and 12-20 s of scoring per loss for
  8 seeds on Hopper, so about 1-1.5 min for 10 seeds (target <= 3 min); on TLA, on the quiet machine at 2
  threads, 62 s of training and 74 s of scoring per loss for 10 seeds: 2.3 min (about 5 min with four or five
  jobs on the cores).

Its training seeds (100..109) and start states (``reset(seed=10000 + 16 s + e)``, 11600..11759) are fresh: a search
trains on seeds 0.. and evaluates from ``reset(seed=search seed + 8 s + e)``, and a search's config moves the
confirmation's states past any rung's (``TrainConfig.start_state_seeds``), so a candidate the search selected is
not scored on what selected it. The studies that led here (action rules, batch size, learning rate, seed soups, more start states)
are in benchmarks/RESULTS.md, "Protocol reliability"."""


ENV_PROTOCOL: dict[str, dict[str, dict[str, Any]]] = {
    "tla": {"search": {"horizon": 500, "episodes": 16}, "final": {"horizon": 500, "episodes": 32}},
}
"""Per-environment fields of a preset: ``ENV_PROTOCOL[env][name]`` is applied over ``PROTOCOLS[name]`` when the
environment is named (``TrainConfig.preset(name, env=env)``; the search, ``symloss eval``/``confirm``, paper_repro
and the benchmarks all name it), and explicit overrides apply over both. An environment or preset absent here
takes the preset as it is.

- ``tla``: the first 500 steps of each episode are scored (``horizon``), on twice the start states (``search`` 16
  per seed, ``final`` 32 per seed), at the simulator cost of 1000 steps on 8 / 16: the ant rarely falls early, so a
  500-step episode costs half a 1000-step one (scoring 63 s per loss for 8 seeds, against 59-74 s). Measured (issue
  12; benchmarks/RESULTS.md "TLA at a 500-step horizon, replicated"), the zoo, two independent per-seed runs of 8
  fresh seeds each, against two at 1000 steps x 16 states: ``final``'s split-half rank reliability 0.957 / 0.936
  (0.838 / 0.870), seeds for a 10% difference 2.9 / 3.8 (8.0 / 10.2), the two runs rank alike with Spearman 0.970
  (0.879); ``search`` trained apart (two runs) ranks like the 500-step finals with rho 0.947-0.951 (the 1000-step
  search like the 1000-step finals 0.68-0.78), and like the 1000-step finals with 0.81-0.91. A 500-step final ranks like the
  1000-step finals with rho 0.87-0.93 (every pair more than 10% apart alike but one or two). TLA returns are then
  those of 500 steps (about half the 1000-step figures), which do not compare with the paper's 1000-step numbers
  nor with ``bench.normalised_score``'s anchors; ``horizon=None, episodes=16`` restores the whole episode.
"""


STORED_BEFORE: dict[str, Any] = {"ema": None, "checkpoints": 1, "soup": 1, "sampling": "replacement",
                                  "start_states": "shared", "horizon": None}
"""Protocol fields added after run directories were first written, with the value every run written before the
field existed was trained with; a stored protocol that lacks one is read with this value (never the preset's,
which may have changed since)."""


_Budget = make_dataclass("Budget", ["steps", "batch_size", "episodes"], frozen=True, kw_only=True)
"""Deprecated (use :data:`PROTOCOLS`): the cost knobs of a protocol."""
DEPRECATED = {"BUDGETS": "PROTOCOLS", "Budget": "TrainConfig"}
"""Old name -> its replacement; the old names still work, with a FutureWarning, until symloss 0.3."""


def deprecated(name: str) -> Any:
    """The value of a deprecated name of ``symloss.train`` (module ``__getattr__``), with a FutureWarning."""
    if name not in DEPRECATED:
        raise AttributeError(f"module 'symloss.train' has no attribute {name!r}")
    warnings.warn(f"symloss.train.{name} is deprecated and will be removed in symloss 0.3; use "
                  f"symloss.train.{DEPRECATED[name]}", FutureWarning, stacklevel=3)
    if name == "Budget":
        return _Budget
    return {key: _Budget(steps=p.steps, batch_size=p.batch_size, episodes=p.episodes) for key, p in PROTOCOLS.items()}


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """A training protocol: hyperparameters of :class:`~symloss.train.PopulationTrainer` and of scoring.

    The defaults train at the ``search`` budget and score plainly (last weights, minibatches with replacement);
    :meth:`preset` gives any of :data:`PROTOCOLS` with overrides. Seeds: every member starts exactly at the SFT
    reference; seed s only sets the minibatches, drawn from ``torch.Generator().manual_seed(s)`` with replacement
    or in shuffled epochs (``sampling``). All candidates with the same seed see the same minibatches (common
    random numbers), so differences between candidates are not data noise.
    """

    steps: int = SEARCH_PROTOCOL["steps"]
    """Optimisation steps per member; >= 1. Progress t = step / steps is passed to the objectives."""
    batch_size: int = SEARCH_PROTOCOL["batch_size"]
    """Preference pairs per minibatch; >= 1 (capped at the training split's size)."""
    seeds: int = SEARCH_PROTOCOL["seeds"]
    """S, training seeds per loss; >= 1. The score of a loss is the mean over its seeds (std reported)."""
    first_seed: int = 0
    """The training seeds are first_seed, ..., first_seed + S - 1; >= 0."""
    episodes: int = SEARCH_PROTOCOL["episodes"]
    """E, evaluation episodes per member for the ``return`` fitness; >= 1."""
    sampling: Literal["replacement", "epochs"] = "replacement"
    """How a seed draws its minibatches (``symloss.train._sampler``): ``replacement`` (this default, and every run
    before 2026-12-07), B pairs uniformly with replacement at every step, so in T steps pair i is seen
    Binomial(T B, 1/n) times (a randomly reweighted dataset per seed); ``epochs`` (the presets), consecutive slices
    of a stream of random permutations of the n pairs, so every pair is seen floor(T B / n) or one more time and
    seeds differ only in the order."""
    lr: float = SEARCH_PROTOCOL["lr"]
    """Adam learning rate; > 0."""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam (beta1, beta2), each in [0, 1)."""
    eps: float = 1e-8
    """Adam epsilon; > 0."""
    max_grad_norm: float | None = SEARCH_PROTOCOL["max_grad_norm"]
    """Per-member gradient-norm clip (L2 over all of a member's parameters); None disables it."""
    fitness: Literal["return", "offline"] | Callable[..., Any] = "return"
    """``return``: mean return over ``episodes`` simulator episodes (the paper); ``offline``: held-out
    preference accuracy and expert log-likelihood, no simulator; or a callable ``(spec, params, context)
    -> Tensor[N]`` (see ``symloss.train.FITNESS``)."""
    offline_ll_weight: float = 0.5
    """w in the offline fitness (1 - w) * accuracy + w * (1 + ll / log K); in [0, 1]."""
    action: Literal["greedy", "mean", "sample"] = SEARCH_PROTOCOL["action"]
    """Action rule of the ``return`` fitness: ``greedy`` (most probable bin, the paper's), ``mean`` (expected
    bin centre under softmax(logits / temperature): smooth in the weights, far less noise) or ``sample``."""
    temperature: float = SEARCH_PROTOCOL["temperature"]
    """Softmax temperature of the ``mean`` action rule; > 0 (-> 0 is greedy, 1 is the policy's mean action)."""
    ema: float | None = None
    """Score averaged weights instead of the last ones: the exponential moving average theta_bar_0 = theta_ref,
    theta_bar_k = d theta_bar_{k-1} + (1 - d) theta_k after every step k (Polyak averaging; d = 0.99 averages
    about the last 1 / (1 - d) = 100 steps). d in [0, 1); None (``TrainConfig()``): score the last weights; the presets
    use 0.995. With d set,
    ``PopulationResult.params`` holds the averages and ``last_params`` the last weights."""
    checkpoints: int = 1
    """K, weights scored per member: the fitness is the mean over K checkpoints evenly spaced over the last half of
    training, at steps T - j floor(T / 2K) for j = K-1, ..., 0 (T = ``steps``; with ``ema``, the averaged weights
    at those steps), every checkpoint on the same ``episodes`` start states; >= 1, and K <= T / 2. K = 1
    (``TrainConfig()``): the weights after the last step; the presets score several. Averaging returns over the late checkpoints of one training
    smooths the chaos of a return that is piecewise constant in the weights; it costs K x the scoring."""
    soup: int = 1
    """G, training seeds averaged into one scored policy: after training, the weights of each loss are averaged
    over consecutive groups of G of its seeds, theta_soup = (1 / G) sum_j theta_(g G + j) (``seed_soup``; every
    seed starts at the reference and differs only in its minibatch order), and each soup is scored once; every
    seed of a soup gets the soup's fitness, so the mean over seeds is the mean over the S / G soups. >= 1 and a
    divisor of the seeds; 1 (the presets): every seed's own weights."""
    eval_seed: int = 0
    """Episode e of every member starts from ``reset(seed=eval_seed + e)`` (common random numbers); a
    search uses its own seed unless this is given. With ``start_states="per_seed"``, from
    ``reset(seed=eval_seed + s E + e)`` for a member trained on seed s."""
    start_states: Literal["shared", "per_seed"] = "shared"
    """Which start states a member plays (the ``return`` fitness). ``shared``: every member the same E
    (``eval_seed`` .. ``eval_seed + E - 1``). ``per_seed``: the members trained on seed s (every loss) play their
    own block of E, ``reset(seed=eval_seed + s E + e)`` (:func:`~symloss.bench.per_seed_starts`), so a run of S
    seeds covers S x E states at the same cost and two losses still meet the same states seed by seed (paired). A
    loss's mean then averages its loss-by-state interaction over S x E states instead of E; a seed's block does
    not depend on which call evaluates it (see :attr:`start_state_seeds`)."""
    horizon: int | None = None
    """Steps per scoring episode at most: a member's return is that of the first H steps of each episode,
    R = sum_{t < H} r_t (an episode that ends earlier keeps its return). None (the presets): the environment's
    limit, 1000 steps. A shorter horizon makes an episode cheaper, so more start states fit the same scoring cost;
    it also scores something else (the start of the gait, not all of it)."""
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
    device_here: InitVar[bool] = True
    """False: the config is for other machines (Ray workers); only the spelling of ``device`` is checked."""

    def __post_init__(self, device_here: bool) -> None:
        if isinstance(self.betas, list):  # e.g. from JSON; stored as a tuple (hashable, frozen)
            object.__setattr__(self, "betas", tuple(self.betas))
        for name in ("steps", "batch_size", "seeds", "episodes"):
            check_range(name, getattr(self, name), lo=1, integer=True)
        check_range("checkpoints", self.checkpoints, lo=1, integer=True)
        if self.checkpoints > 1 and self.checkpoints > self.steps // 2:
            raise ConfigError(f"checkpoints={self.checkpoints}: spread over the last half of training, it needs "
                              f"steps >= {2 * self.checkpoints} (steps={self.steps}); lower checkpoints or raise "
                              f"steps")
        check_range("soup", self.soup, lo=1, integer=True)
        if self.seeds % self.soup:
            raise ConfigError(f"soup={self.soup}: must divide seeds={self.seeds} (a soup averages that many seeds); "
                              f"pick a divisor of seeds or change seeds")
        for name in ("first_seed", "eval_seed"):
            check_range(name, getattr(self, name), lo=0, integer=True)
        for name in ("lr", "eps"):
            check_range(name, getattr(self, name), lo=0, lo_open=True)
        for name in ("max_grad_norm", "memory_budget_mb"):
            if getattr(self, name) is not None:
                check_range(name, getattr(self, name), lo=0, lo_open=True, fix="or None")
        if self.max_members_per_chunk is not None:
            check_range("max_members_per_chunk", self.max_members_per_chunk, lo=1, integer=True,
                        fix="or None")
        if self.horizon is not None:
            check_range("horizon", self.horizon, lo=1, integer=True, fix="or None (the environment's limit)")
        if self.threads is not None:
            check_range("threads", self.threads, lo=1, integer=True, fix="or None (automatic)")
        for i, beta in enumerate(check_tuple("betas", self.betas, length=2, what="Adam's beta1, beta2",
                                             example="(0.9, 0.999)")):
            check_range(f"betas[{i}]", beta, lo=0, hi=1, hi_open=True)
        check_range("offline_ll_weight", self.offline_ll_weight, lo=0, hi=1)
        if self.ema is not None:
            check_range("ema", self.ema, lo=0, hi=1, hi_open=True, fix="or None (score the last weights)")
        if not callable(self.fitness):
            check_choice("fitness", self.fitness, FITNESS_NAMES,
                         fix="or a callable (spec, params, context) -> Tensor[N]")
        check_choice("dtype", self.dtype, ("float32", "float64"))
        check_choice("action", self.action, ("greedy", "mean", "sample"))
        check_choice("sampling", self.sampling, ("replacement", "epochs"))
        check_choice("start_states", self.start_states, ("shared", "per_seed"))
        check_range("temperature", self.temperature, lo=0, lo_open=True)
        check_bool("cuda_graph", self.cuda_graph)
        check_device("device", self.device, here=device_here)

    @classmethod
    def preset(cls, name: str, *, env: str | None = None, device_here: bool = True, **overrides: Any) -> TrainConfig:
        """The protocol ``PROTOCOLS[name]`` with, for a named ``env``, its :data:`ENV_PROTOCOL` fields, then
        ``overrides`` (TrainConfig fields) applied, checked. ``env=None`` gives the preset as defined for every
        environment. A preset's late checkpoints shrink to fit a shorter training given as ``steps``
        (K = min(K, steps // 2), at least 1) unless ``checkpoints`` is given too."""
        check_choice("protocol", name, PROTOCOLS)
        if env is not None:
            check_env_name(env)
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise ConfigError(f"{unknown[0]}: unknown TrainConfig field{did_you_mean(unknown[0], known)}")
        base, steps = PROTOCOLS[name], overrides.get("steps")
        env_fields = ENV_PROTOCOL.get(env, {}).get(name, {}) if env else {}
        if env_fields:
            base = replace(base, **env_fields)
        if "checkpoints" not in overrides and isinstance(steps, int) and steps >= 1:
            overrides["checkpoints"] = min(base.checkpoints, max(1, steps // 2))  # a short training: fewer fit
        return replace(base, device_here=device_here, **overrides)

    @classmethod
    def from_spec(cls, text: str, *, env: str | None = None, device_here: bool = True,
                  **overrides: Any) -> TrainConfig:
        """A protocol written as text: ``"final:seeds=8:episodes=16"`` is ``preset("final", env=env, seeds=8,
        episodes=16)``. Values are parsed as int, then float, then kept as text (never evaluated); fields
        in ``overrides`` apply after the text's. Bad text raises :class:`ConfigError` naming the part."""
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"protocol spec {text!r}: must be text such as 'search' or 'final:seeds=8'")
        name, *parts = text.strip().split(":")
        fields_given: dict[str, Any] = {}
        for part in parts:
            key, sep, value = part.partition("=")
            if not sep or not key or not value:
                raise ConfigError(f"protocol spec {text!r}: part {part!r} must be field=value, e.g. "
                                  f"'{name}:seeds=8'")
            fields_given[key.strip()] = _spec_value(value.strip())
        return cls.preset(name, env=env, device_here=device_here, **{**fields_given, **overrides})

    @classmethod
    def from_budget(cls, budget: str, **overrides: Any) -> TrainConfig:
        """Deprecated (removed in symloss 0.3): :meth:`preset`."""
        warnings.warn("TrainConfig.from_budget is deprecated and will be removed in symloss 0.3; use "
                      "TrainConfig.preset", FutureWarning, stacklevel=2)
        check_choice("budget", budget, sorted(PROTOCOLS))
        return cls.preset(budget, **overrides)

    @property
    def seed_list(self) -> list[int]:
        """The training seeds: ``first_seed, ..., first_seed + seeds - 1``."""
        return list(range(self.first_seed, self.first_seed + self.seeds))

    @property
    def start_state_seeds(self) -> range:
        """Every ``reset`` seed the protocol's members start an episode from: ``eval_seed`` .. ``eval_seed + E - 1``
        (``shared``), or the blocks of E of its seeds ``first_seed`` .. ``first_seed + S - 1`` (``per_seed``),
        ``eval_seed + first_seed E`` .. ``eval_seed + (first_seed + S) E - 1``."""
        if self.start_states == "shared":
            return range(self.eval_seed, self.eval_seed + self.episodes)
        first = self.eval_seed + self.first_seed * self.episodes
        return range(first, first + self.seeds * self.episodes)

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON values (tuples as lists); ``preset(name, **d)`` gives the config back."""
        if callable(self.fitness):
            raise ConfigError(f"fitness={self.fitness!r}: a callable cannot be stored; give 'return' or 'offline'")
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}

    @property
    def checkpoint_steps(self) -> list[int]:
        """Steps after which the scored weights are taken, ascending; the last is ``steps``."""
        gap = self.steps // (2 * self.checkpoints)
        return [self.steps - j * gap for j in reversed(range(self.checkpoints))]

    @property
    def torch_dtype(self) -> Any:
        """The ``torch.dtype`` of ``dtype``."""
        import torch

        return getattr(torch, self.dtype)


def _spec_value(text: str) -> Any:
    """A value of a protocol spec: an int, a float, ``None``/``true``/``false``, or the text itself."""
    lowered = text.lower()
    if lowered in ("none", "null"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


PROTOCOLS: dict[str, TrainConfig] = {"search": TrainConfig(**SEARCH_PROTOCOL), "final": TrainConfig(**FINAL_PROTOCOL)}
"""The named training protocols (see :data:`SEARCH_PROTOCOL` and :data:`FINAL_PROTOCOL` for their reasons)."""
