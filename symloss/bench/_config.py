"""Dataset configuration (``BenchConfig``) and the named variant presets.

A variant is a ``+``-joined set of components, each a preset of ``BenchConfig`` fields:

==========  ===========================================================================
``clean``   label = the segment with the higher true return (no other component)
``bt``      label sampled from Bradley-Terry: P(a > b) = sigmoid((R_a - R_b) / (tau * sd(R)))
``noisy``   a fraction ``flip_fraction`` of labels flipped at random (the paper's "shuffled")
``mixed``   a fraction ``low_quality_fraction`` of pairs with both segments from low-quality levels
==========  ===========================================================================

Combinations such as ``noisy+mixed`` or ``bt+noisy+mixed`` merge their components' fields;
``shuffled`` is accepted as an alias of ``noisy``.

Why these fractions (``noisy`` 0.4, ``mixed`` 0.75): the variants must be hard in the paper's sense, DPO /
ORPO trained on them must do clearly worse than on ``clean``. This was checked on Hopper with several seeds
from one shared SFT reference (paper_repro/RESULTS.md, "multi-seed protocol"): with 600 Adam steps at lr 3e-4
and DPO beta 1, both DPO and ORPO lose clearly on ``noisy`` and ``mixed``. ``flip_fraction=0.5`` (labels
carry no information) was also tried and made DPO no worse than 0.4 does (780 vs 730, 3 seeds); 0.4 is kept
because it leaves a 60/40 signal that a robust loss can still exploit, and because changing a preset changes
the dataset every existing result was computed on.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from symloss.bench._behaviour import LEVELS
from symloss.bench._envs import check_env_name
from symloss.validation import ConfigError, check_choice, check_range, did_you_mean

__all__ = ["BenchConfig", "VARIANT_COMPONENTS", "VARIANTS", "DEFAULT_PAIRS", "make_config"]

DEFAULT_PAIRS: dict[str, int] = {"hopper": 5120, "tla": 1280}
"""The paper's dataset sizes."""

VARIANT_COMPONENTS: dict[str, dict[str, Any]] = {
    "clean": {},
    "bt": {"label": "bt"},
    "noisy": {"flip_fraction": 0.4},
    "mixed": {"low_quality_fraction": 0.75},
}
"""Each component's ``BenchConfig`` fields."""

VARIANT_ALIASES: dict[str, str] = {"shuffled": "noisy"}
"""Other accepted component names (the paper calls label noise "shuffled")."""


def _all_variants() -> tuple[str, ...]:
    names = ["clean"]
    parts = [c for c in VARIANT_COMPONENTS if c != "clean"]
    for r in range(1, len(parts) + 1):
        names += ["+".join(combo) for combo in itertools.combinations(parts, r)]
    return tuple(names)


VARIANTS: tuple[str, ...] = _all_variants()
"""Every named variant: ``clean`` and each combination of ``bt``, ``noisy``, ``mixed`` (in that order)."""


@dataclass(frozen=True, kw_only=True)
class BenchConfig:
    """Everything that determines a preference dataset (its cache key is a hash of these fields)."""

    env: str = "hopper"
    """Benchmark environment: ``hopper`` or ``tla``."""
    variant: str = "clean"
    """Variant name (see ``VARIANTS``); informational, the fields below hold its parameters."""
    n_pairs: int = 5120
    """Number of preference pairs (paper: Hopper 5120, TLA 1280); >= 1."""
    seg_len: int = 50
    """Segment length L in environment steps, >= 1; a segment has L * act_dim tokens."""
    min_seg_len: int = 10
    """Shorter end-of-episode chunks are dropped; in [1, seg_len]."""
    levels: tuple[str, ...] = LEVELS
    """Behaviour levels the segments of ordinary pairs are drawn from (uniformly)."""
    low_quality_levels: tuple[str, ...] = ("random", "weak")
    """Levels both segments of a low-quality (``mixed``) pair are drawn from."""
    action_noise: float = 0.5
    """Rollout noise: multiplier of each behaviour policy's learned std; >= 0."""
    label: Literal["return", "bt"] = "return"
    """``return``: prefer the higher true segment return; ``bt``: sample from Bradley-Terry."""
    bt_temperature: float = 0.25
    """tau of the ``bt`` label, in units of the std of segment returns; > 0."""
    flip_fraction: float = 0.0
    """Fraction of pairs whose label is flipped (exactly round(fraction * n_pairs) pairs); in [0, 1]."""
    low_quality_fraction: float = 0.0
    """Fraction of pairs with both segments from ``low_quality_levels``; in [0, 1]."""
    seed: int = 0
    """Seed of every random choice (rollouts, pairing, labels); >= 0."""

    def __post_init__(self) -> None:
        check_env_name(self.env)
        for name in ("n_pairs", "seg_len"):
            check_range(name, getattr(self, name), lo=1, integer=True)
        check_range("min_seg_len", self.min_seg_len, lo=1, hi=self.seg_len, integer=True,
                    why=f"at most seg_len={self.seg_len}")
        check_range("seed", self.seed, lo=0, integer=True)
        for name in ("levels", "low_quality_levels"):
            value = getattr(self, name)
            if isinstance(value, list):  # e.g. from JSON; stored as a tuple (hashable, frozen)
                object.__setattr__(self, name, value := tuple(value))
            if not isinstance(value, tuple) or not value:
                raise ConfigError(f"{name}={value!r}: must be a non-empty tuple of levels from {list(LEVELS)}")
            for level in value:
                check_choice(name, level, LEVELS)
        check_choice("label", self.label, ("return", "bt"))
        check_range("bt_temperature", self.bt_temperature, lo=0, lo_open=True)
        check_range("action_noise", self.action_noise, lo=0)
        for name in ("flip_fraction", "low_quality_fraction"):
            check_range(name, getattr(self, name), lo=0, hi=1, why="a fraction of the pairs")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of the fields."""
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def canonical_variant(variant: str) -> str:
    """Normalise ``variant`` (component order, case, spaces) or raise ``ValueError`` with a suggestion."""
    parts = [p.strip().lower() for p in str(variant).split("+") if p.strip()]
    parts = [VARIANT_ALIASES.get(p, p) for p in parts]
    unknown = [p for p in parts if p not in VARIANT_COMPONENTS]
    if unknown or not parts:
        raise ConfigError(f"variant={variant!r}: unknown variant; accepted: {', '.join(VARIANTS)}"
                          f"{did_you_mean(variant, [*VARIANTS, *VARIANT_ALIASES])}")
    if "clean" in parts and len(parts) > 1:
        raise ConfigError(f"variant={variant!r}: 'clean' cannot be combined; drop it or the other components")
    order = list(VARIANT_COMPONENTS)
    return "+".join(sorted(set(parts), key=order.index))


def make_config(env: str, variant: str = "clean", **overrides: Any) -> BenchConfig:
    """``BenchConfig`` for ``env`` and a named ``variant``; ``overrides`` replace any field.

    ``n_pairs`` defaults to the paper's size for ``env`` (Hopper 5120, TLA 1280).
    """
    env = check_env_name(env)
    name = canonical_variant(variant)
    known = [f.name for f in fields(BenchConfig) if f.name not in ("env", "variant")]
    bad = [k for k in overrides if k not in known]
    if bad:
        raise ConfigError(f"{bad[0]}: unknown BenchConfig field{did_you_mean(bad[0], known)}")
    kw: dict[str, Any] = {"n_pairs": DEFAULT_PAIRS[env]}
    for part in name.split("+"):
        kw.update(VARIANT_COMPONENTS[part])
    kw.update({k: v for k, v in overrides.items() if v is not None})
    return BenchConfig(env=env, variant=name, **kw)
