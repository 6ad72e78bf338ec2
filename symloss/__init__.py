"""symloss: symbolic discovery of preference-optimization losses.

The main flow, one layer per subpackage: the CLI (``symloss.cli``) builds a ``SearchConfig`` and runs a
:class:`LossSearch` (``symloss.search``: ask for offspring, score the new ones with the fitness in one
batched call, tell the results, checkpoint); the fitness is ``symloss.train.BenchmarkFitness``, which
trains the candidate losses x seeds as one population of stacked policies and scores them under a named
training protocol (``symloss.train.PROTOCOLS``); each candidate is a ``MirrorLoss`` of
``symloss.objectives``, whose slots are expressions of ``symloss.expr`` (SymPy compiled to Torch);
``symloss.bench`` feeds the data (MuJoCo preference datasets, the SFT reference) and the evaluation
(batched rollouts). ``symloss.integrations`` hands a found loss to TRL.

Layers are imported lazily so that ``import symloss`` stays cheap and has no side effects.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "MirrorLoss": ("symloss.objectives", "MirrorLoss"),
    "LogpBatch": ("symloss.objectives", "LogpBatch"),
    "LossOutput": ("symloss.objectives", "LossOutput"),
    "LossSearch": ("symloss.search", "LossSearch"),
}
_SUBMODULES = {"expr", "objectives", "bench", "train", "search", "integrations"}

__all__ = ["__version__", *sorted(_LAZY), *sorted(_SUBMODULES)]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    if name in _SUBMODULES:
        return importlib.import_module(f"symloss.{name}")
    raise AttributeError(f"module 'symloss' has no attribute {name!r}")
