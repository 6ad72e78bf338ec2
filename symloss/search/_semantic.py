"""Semantic identity of candidates inside a search: aliases, the novelty filter of ``ask``, family labels.

Built on :mod:`symloss.search._dedup` (signatures on the data's u range). One :class:`SemanticIndex` per
generation holds the signatures of the cache's discovered losses; it

- tells ``ask`` whether a child is a new loss (:meth:`novel`; a duplicate is mutated again),
- maps a candidate equivalent to a cached loss onto that loss's key (:meth:`aliases`: one fitness entry),
- gives the new records their signature and loss-family label (:meth:`label`).

Without the data's range (a user's fitness with no ``u_ranges``) nothing is merged: such a fitness may
score maps anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from symloss.expr import parse_formula
from symloss.objectives import SLOT_SPECS
from symloss.search._config import SearchConfig
from symloss.search._dedup import Signature, family, find_equivalent, signature
from symloss.search._evolve import Candidate, SearchState, base_loss


def _known(cache: Mapping[str, Mapping[str, Any]]) -> dict[str, Signature]:
    return {key: Signature.from_json(r["signature"]) for key, r in cache.items()
            if r.get("signature") and r.get("kind", "discovered") == "discovered"}


class SemanticIndex:
    """Signatures of a search's discovered losses on ``state.data_ranges`` (see the module doc)."""

    def __init__(self, state: SearchState, config: SearchConfig) -> None:
        self.config = config
        self.ranges = dict(state.data_ranges)
        self.cache_keys = set(state.cache)
        self.known = _known(state.cache) if self.ranges else {}
        self._computed: dict[str, Signature | None] = {}
        self.new: dict[str, Signature] = {}
        """Signatures of the candidates :meth:`aliases` found new (they get a record this generation)."""

    def _signature(self, candidate: Candidate) -> Signature | None:
        """The candidate's signature, computed once per key (``novel`` in ``ask`` and ``aliases`` after it
        both need it)."""
        if candidate.key not in self._computed:
            try:
                self._computed[candidate.key] = signature(candidate.exprs, self.ranges, temporal=self.config.temporal)
            except ValueError:
                self._computed[candidate.key] = None
        return self._computed[candidate.key]

    def novel(self, candidate: Candidate) -> bool:
        """False if ``candidate`` is one loss with a cached one or one accepted before; else remember it."""
        if not self.ranges:
            return True
        sig = self._signature(candidate)
        if sig is None:
            return True
        if find_equivalent(sig, self.known) is not None:
            return False
        self.known[candidate.key] = sig
        return True

    def aliases(self, candidates: Sequence[Candidate]) -> dict[str, str]:
        """Candidate key -> the key of the equivalent cached (or earlier in ``candidates``) loss."""
        self.new = {}
        if not self.ranges:
            return {}
        known = {k: s for k, s in self.known.items() if k in self.cache_keys}
        out: dict[str, str] = {}
        for cand in candidates:
            if cand.loss is None or cand.key in self.cache_keys or cand.key in out or cand.key in self.new:
                continue
            sig = self._signature(cand)
            if sig is None:
                continue
            match = find_equivalent(sig, known)
            if match is not None:
                out[cand.key] = match
            else:
                known[cand.key] = sig
                self.new[cand.key] = sig
        return out

    def label(self, state: SearchState) -> SearchState:
        """``state`` whose new records carry their signature (for later dedup) and their family label."""
        cache = dict(state.cache)
        base = base_loss(self.config)
        for key, sig in self.new.items():
            if key in cache and "signature" not in cache[key]:
                exprs = {slot: parse_formula(text, SLOT_SPECS[slot]) for slot, text in cache[key]["formulas"].items()}
                label = family(exprs, self.ranges, beta=base.beta, base=self.config.base,
                               temporal=self.config.temporal)
                cache[key] = {**cache[key], "signature": sig.to_json(), "family": label}
        return replace(state, cache=cache)


__all__ = ["SemanticIndex"]
