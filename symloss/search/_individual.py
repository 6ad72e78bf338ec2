"""Individuals of the loss search: one DEAP tree per evolved slot, serialisable to text without ``eval``
(read back by :func:`symloss.expr.tree_from_string`)."""

from __future__ import annotations

from collections.abc import Mapping

import sympy as sp
from deap import base, gp

from symloss.expr import tree_from_string, tree_to_sympy


class SearchFitness(base.Fitness):
    """Two objectives: the fitness score (maximised) and complexity (minimised), for NSGA-II."""

    weights = (1.0, -1.0)


class Individual:
    """A candidate: ``trees[slot]`` is the DEAP tree of each evolved slot; ``fitness`` is DEAP's."""

    __slots__ = ("trees", "fitness", "key")

    def __init__(self, trees: Mapping[str, gp.PrimitiveTree], key: str = "") -> None:
        self.trees = dict(trees)
        self.fitness = SearchFitness()
        self.key = key
        """The cache key of the loss this individual was scored as ("" before scoring or if invalid)."""

    def copy(self) -> Individual:
        return Individual({slot: gp.PrimitiveTree(list(tree)) for slot, tree in self.trees.items()})

    def exprs(self) -> dict[str, sp.Expr]:
        """SymPy expression of each slot."""
        return {slot: tree_to_sympy(tree) for slot, tree in self.trees.items()}

    def to_strings(self) -> dict[str, str]:
        return {slot: str(tree) for slot, tree in self.trees.items()}

    @property
    def size(self) -> int:
        return sum(len(tree) for tree in self.trees.values())

    @property
    def height(self) -> int:
        return max(tree.height for tree in self.trees.values())


def individual_from_strings(strings: Mapping[str, str], psets: Mapping[str, gp.PrimitiveSet]) -> Individual:
    """Rebuild an individual from :meth:`Individual.to_strings` output."""
    unknown = sorted(set(strings) - set(psets))
    if unknown:
        raise ValueError(f"individual: unknown slot(s) {unknown}; this search evolves {sorted(psets)}")
    return Individual({slot: tree_from_string(text, psets[slot]) for slot, text in strings.items()})
