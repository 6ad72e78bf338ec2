"""Load a :class:`~symloss.objectives.MirrorLoss` from wherever a user keeps one.

Accepted sources, in this order:

- a ``MirrorLoss`` (returned as is);
- a mapping: the output of ``MirrorLoss.to_dict()``, possibly with metadata keys beside it (a search's
  ``best.json`` adds ``fitness_mean``, ``search``, ...), or an artefact that wraps it under ``"loss"``
  (e.g. ``{"loss": {...}, "fitness": 1735.0}``);
- a path to a JSON file holding such a mapping;
- a path to a run directory holding ``best.json``;
- the name of a zoo loss (``"dpo"``, ``"orpo"``, ...) when no such file exists.

Formulas are parsed by symloss's own grammar (:meth:`MirrorLoss.from_dict`); nothing is evaluated, and an
invalid or unsafe formula raises :class:`ArtefactError` naming the file and the field.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from symloss.objectives import LOSSES, MirrorLoss, get_loss

LOSS_KEYS = frozenset({"format", "name", "mirror", "link", "imitation", "beta", "w_pref", "w_imit", "aggregation",
                       "reference_free", "latex"})
"""Keys of ``MirrorLoss.to_dict()`` (plus ``latex``); other keys of an artefact are metadata and ignored."""

BEST_FILE = "best.json"
"""The file a search run directory keeps its best loss in."""

LossSource = MirrorLoss | Mapping[str, Any] | str | os.PathLike[str]


class ArtefactError(ValueError):
    """A loss artefact that cannot be read: missing, not JSON, or with an invalid or unsafe formula."""


def load_loss(source: LossSource) -> MirrorLoss:
    """The :class:`MirrorLoss` described by ``source`` (see the module docstring for what is accepted)."""
    if isinstance(source, MirrorLoss):
        return source
    if isinstance(source, Mapping):
        return loss_from_mapping(source, origin="the given dict")
    if isinstance(source, str | os.PathLike):
        return _load_path(Path(source), raw=str(source))
    raise TypeError(
        f"loss: expected a MirrorLoss, a dict, a JSON file, a run directory or a zoo name, got "
        f"{type(source).__name__}"
    )


def loss_from_mapping(data: Mapping[str, Any], *, origin: str) -> MirrorLoss:
    """Rebuild a loss from ``MirrorLoss.to_dict()`` output, or an artefact wrapping it under ``"loss"``."""
    inner = data.get("loss") if "mirror" not in data else None
    if isinstance(inner, Mapping):
        data = inner
    elif "mirror" not in data:
        raise ArtefactError(
            f"{origin}: not a symloss loss artefact (keys {sorted(data)}); expected the output of "
            "MirrorLoss.to_dict() (keys 'mirror', 'link', ...) or a dict with such a 'loss' entry"
        )
    extra = sorted(set(data) - LOSS_KEYS)
    for key in extra:  # metadata (fitness_mean, search, ...) is ignored; a misspelt loss key is not
        close = difflib.get_close_matches(key, sorted(LOSS_KEYS), n=1, cutoff=0.8)
        if close:
            raise ArtefactError(f"{origin}: unknown key {key!r}; did you mean {close[0]!r}?")
    try:
        return MirrorLoss.from_dict({k: v for k, v in data.items() if k in LOSS_KEYS})
    except (ValueError, TypeError) as exc:  # FormulaError is a ValueError
        raise ArtefactError(f"{origin}: invalid loss: {exc}") from exc


def _load_path(path: Path, *, raw: str) -> MirrorLoss:
    if path.is_dir():
        best = path / BEST_FILE
        if not best.is_file():
            raise ArtefactError(f"{raw}: a directory without {BEST_FILE}; pass a loss JSON file or a run directory")
        path = best
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ArtefactError(f"{path}: not valid JSON ({exc}); expected a loss artefact") from exc
        if not isinstance(data, Mapping):
            raise ArtefactError(f"{path}: holds a JSON {type(data).__name__}, expected an object")
        return loss_from_mapping(data, origin=str(path))
    if raw in LOSSES:
        return get_loss(raw)
    close = difflib.get_close_matches(raw, list(LOSSES), n=1)
    hint = f"; did you mean the zoo loss {close[0]!r}?" if close else ""
    raise FileNotFoundError(
        f"loss={raw!r}: no such file or directory, and not a zoo loss {sorted(LOSSES)}{hint}"
    )
