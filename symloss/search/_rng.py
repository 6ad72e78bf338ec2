"""The search's own random generator, lent to DEAP: its operators call the module-level ``random`` functions."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

_RANDOM_FUNCTIONS = tuple(name for name in dir(random) if not name.startswith("_")
                          and getattr(getattr(random, name), "__self__", None) is random.random.__self__)
"""The module-level functions of ``random`` (``random``, ``choice``, ``randint``, ...): bound methods of its
hidden global generator."""


@contextmanager
def drawing_from(rng: random.Random) -> Iterator[random.Random]:
    """Within the block, the module-level functions of ``random`` draw from ``rng`` (DEAP calls them).

    The global generator is neither read nor advanced, so ``random.getstate()`` is the same before and
    after. Not thread-safe: another thread calling ``random.random()`` during the block draws from ``rng``.
    """
    saved = {name: getattr(random, name) for name in _RANDOM_FUNCTIONS}
    for name in _RANDOM_FUNCTIONS:
        setattr(random, name, getattr(rng, name))
    try:
        yield rng
    finally:
        for name, function in saved.items():
            setattr(random, name, function)
