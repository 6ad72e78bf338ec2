"""Seed soups: the weights of one loss averaged over several training seeds.

Every member of a population starts exactly at the SFT reference, and its seed only sets the order of its
minibatches. The soup of G seeds of loss p,

    theta_soup(p, g) = (1 / G) sum_{j < G} theta(p, g G + j),      g = 0, ..., S / G - 1,

averages the minibatch noise out of the weights before the return is taken. Averaging returns over seeds does
so after the return, which for greedy bins is piecewise constant and chaotic in the weights.
"""

from __future__ import annotations

import torch

__all__ = ["seed_soup"]


def seed_soup(params: dict[str, torch.Tensor], n_losses: int, n_seeds: int, size: int) -> dict[str, torch.Tensor]:
    """Soups of ``size`` consecutive seeds of each loss, from ``params`` laid out ``[P * S, ...]`` loss-major
    (as :class:`~symloss.train.PopulationResult` keeps them); returns ``[P * S / G, ...]`` in the same order."""
    if size < 1 or n_seeds % size:
        raise ValueError(f"soup size {size}: must be >= 1 and divide the {n_seeds} seeds")
    out = {}
    for key, value in params.items():
        if value.shape[0] != n_losses * n_seeds:
            raise ValueError(f"params[{key!r}]: leading size {value.shape[0]}, expected P * S = "
                             f"{n_losses} * {n_seeds}")
        grouped = value.reshape(n_losses, n_seeds // size, size, *value.shape[1:]).mean(2)
        out[key] = grouped.reshape(n_losses * (n_seeds // size), *value.shape[1:])
    return out
