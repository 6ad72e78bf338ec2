"""symloss: symbolic discovery of preference-optimization losses.

Import layers lazily so that ``import symloss`` stays cheap and has no side effects.
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
