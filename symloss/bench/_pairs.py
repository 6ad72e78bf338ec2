"""Pairing and labelling: pure NumPy functions of a ``BenchConfig``, segment returns and a Generator.

For pair i with segments a_i, b_i and true segment returns R(a_i), R(b_i):

- levels: a fraction ``low_quality_fraction`` of pairs (exactly round(f n) of them, chosen at random)
  draws both segments' levels uniformly from ``low_quality_levels``; the others from ``levels``;
- preference of a over b: ``return``: R(a) >= R(b); ``bt``: Bernoulli(sigmoid((R(a) - R(b)) / (tau sd(R))))
  with sd(R) the standard deviation of all the dataset's segment returns;
- flips: exactly round(``flip_fraction`` n) pairs, chosen at random, get the opposite preference.
"""

from __future__ import annotations

import numpy as np

from symloss.bench._config import BenchConfig

__all__ = ["assign_levels", "label_pairs"]


def _exact_subset(n: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask ``[n]`` with exactly round(fraction * n) True entries at random positions."""
    mask = np.zeros(n, dtype=bool)
    mask[rng.permutation(n)[: int(round(fraction * n))]] = True
    return mask


def assign_levels(cfg: BenchConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Levels of both segments of every pair.

    Returns:
        ``(level_a [n], level_b [n], low_quality [n])``: level indices into ``cfg.levels`` /
        ``cfg.low_quality_levels`` resolved to names (object arrays), and the low-quality mask.
    """
    n = cfg.n_pairs
    low = _exact_subset(n, cfg.low_quality_fraction, rng)
    levels, low_levels = np.array(cfg.levels), np.array(cfg.low_quality_levels)
    pick = [np.where(low, rng.choice(low_levels, n), rng.choice(levels, n)) for _ in range(2)]
    return pick[0], pick[1], low


def label_pairs(
    cfg: BenchConfig, ret_a: np.ndarray, ret_b: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Which segment of each pair is chosen.

    Returns:
        ``(a_chosen [n] bool, flipped [n] bool)``.
    """
    ret_a, ret_b = np.asarray(ret_a, dtype=np.float64), np.asarray(ret_b, dtype=np.float64)
    if cfg.label == "bt":
        scale = cfg.bt_temperature * max(float(np.std(np.concatenate([ret_a, ret_b]))), 1e-8)
        p_a = 0.5 * (1.0 + np.tanh(0.5 * (ret_a - ret_b) / scale))  # sigmoid, overflow-free
        a_chosen = rng.random(ret_a.shape[0]) < p_a
    else:
        a_chosen = ret_a >= ret_b
    flipped = _exact_subset(ret_a.shape[0], cfg.flip_fraction, rng)
    return a_chosen ^ flipped, flipped
