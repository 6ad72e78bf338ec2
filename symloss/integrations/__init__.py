"""Integrations: hand symloss losses to training frameworks.

The end of the main flow: a loss found by the search (a ``best.json`` of its run directory, or a zoo
name) is loaded as a ``MirrorLoss`` without evaluating code and exported as LaTeX, Python, JSON or a
script that trains a language model with it.

``symloss.integrations.trl`` holds :class:`MirrorDPOTrainer` (a TRL ``DPOTrainer`` that trains with any
MirrorLoss); it imports TRL, so it is loaded only when used. Loading and exporting loss artefacts needs
nothing beyond symloss itself.

>>> from symloss.integrations import load_loss, export_artefact
>>> print(export_artefact(load_loss("dpo"), "json"))  # doctest: +ELLIPSIS
{...
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ArtefactError": ("symloss.integrations._artefact", "ArtefactError"),
    "load_loss": ("symloss.integrations._artefact", "load_loss"),
    "export_artefact": ("symloss.integrations._export_cli", "export_artefact"),
    "EXPORT_FORMATS": ("symloss.integrations._export_cli", "EXPORT_FORMATS"),
    "MirrorDPOTrainer": ("symloss.integrations.trl", "MirrorDPOTrainer"),
    "MirrorDPOConfig": ("symloss.integrations.trl", "MirrorDPOConfig"),
    **{name: ("symloss.integrations._trl_tiny", name)  # an offline tiny language model, for tests and scripts
       for name in ("tiny_gpt2", "tiny_tokenizer", "toy_corpus", "toy_preferences")},
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'symloss.integrations' has no attribute {name!r}")
