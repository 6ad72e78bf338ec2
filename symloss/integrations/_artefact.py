"""Load a :class:`~symloss.objectives.MirrorLoss` from wherever a user keeps one.

Accepted sources, in this order:

- a ``MirrorLoss`` (returned as is);
- a mapping: the output of ``MirrorLoss.to_dict()``, possibly with metadata keys beside it (a search's
  ``best.json`` adds ``fitness_mean``, ``search``, ...), or an artefact that wraps it under ``"loss"``
  (e.g. ``{"loss": {...}, "fitness": 1735.0}``);
- a path to a JSON file holding such a mapping;
- a path to a run directory holding ``best.json``;
- the name of a zoo loss (``"dpo"``, ``"orpo"``, ...) when no such file exists.

Formulas are parsed by symloss's own grammar (:meth:`MirrorLoss.from_dict`); nothing is evaluated. Every
field is validated (``beta: Infinity``, ``reference_free: "no"``, NaN weights or ``log(0)`` constants are
refused), and any error raises :class:`ArtefactError`, one line naming the file, the field and what is
accepted. A loss read from a file whose mirror map is not strictly increasing or whose link does not
decrease near 0 (:meth:`MirrorLoss.check`) loads with a warning: a user may build such a loss on purpose in
Python, but in a file it is more likely a mistake.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from symloss.expr import to_formula
from symloss.objectives import FIELDS, LOSSES, MirrorLoss, get_loss
from symloss.validation import did_you_mean

LOSS_KEYS = frozenset({"format", "latex", *FIELDS})
"""Keys of ``MirrorLoss.to_dict()`` (its fields, plus ``format`` and ``latex``); other keys of an artefact are
metadata and ignored, except misspelt field names and dunder names, which are refused."""

BEST_FILE = "best.json"
"""The file a search run directory keeps its best loss in."""

LossSource = MirrorLoss | Mapping[str, Any] | str | os.PathLike[str]


class ArtefactError(ValueError):
    """A loss artefact that cannot be read: missing, not JSON, or with an invalid or unsafe formula."""


class ArtefactNotFoundError(ArtefactError, FileNotFoundError):
    """A loss source that is neither an existing file or directory nor a zoo name."""


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
    """Rebuild a loss from ``MirrorLoss.to_dict()`` output, or an artefact wrapping it under ``"loss"``.

    Warns (:class:`UserWarning`) when a slot fails its validity check (see the module docstring)."""
    raw_data = data
    inner = data.get("loss") if "mirror" not in data else None
    if isinstance(inner, Mapping):
        data = inner
    elif "mirror" not in data:
        raise ArtefactError(
            f"{origin}: not a symloss loss artefact (keys {sorted(map(str, data))}); expected the output of "
            "MirrorLoss.to_dict() (keys 'mirror', 'link', ...) or a dict with such a 'loss' entry"
        )
    for key in sorted(map(str, set(data) - LOSS_KEYS)):  # metadata (fitness_mean, ...) is ignored, but not
        if key.startswith("__") or not key.isascii():   # names that only an attack would use
            raise ArtefactError(f"{origin}: key {key!r} is not a loss field or metadata; accepted loss fields "
                                f"{sorted(LOSS_KEYS)} plus plain metadata names")
        if hint := did_you_mean(key, sorted(LOSS_KEYS), cutoff=0.8):  # ... or a misspelt field
            raise ArtefactError(f"{origin}: unknown key {key!r}{hint}")
    try:
        loss = MirrorLoss.from_dict({k: v for k, v in data.items() if k in LOSS_KEYS})
    except (ValueError, TypeError) as exc:  # FormulaError and ConfigError are ValueErrors
        raise ArtefactError(f"{origin}: invalid loss: {exc}") from exc
    for slot, result in loss.check(_recorded_u_ranges(data, raw_data)).items():
        if not result:
            warnings.warn(f"{origin}: {slot}={to_formula(getattr(loss, slot))!r} fails symloss's validity check "
                          f"({result.reason}); loaded anyway, but training with it may diverge or prefer the "
                          "rejected responses", UserWarning, stacklevel=2)
    return loss


def _recorded_u_ranges(*datas: Mapping[str, Any]) -> dict[str, tuple[float, float]] | None:
    """The ``u_ranges`` a search recorded in best.json ({slot: [low, high]}, low < high <= 0), if valid."""
    for data in datas:
        ranges = data.get("u_ranges")
        if not isinstance(ranges, Mapping):
            continue
        out = {}
        for slot, pair in ranges.items():
            if slot in ("mirror", "imitation") and isinstance(pair, list | tuple) and len(pair) == 2 and all(
                    isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in pair) \
                    and pair[0] < pair[1] <= 0:
                out[slot] = (float(pair[0]), float(pair[1]))
        return out or None
    return None


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
        except OSError as exc:
            raise ArtefactError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
        if not isinstance(data, Mapping):
            raise ArtefactError(f"{path}: holds a JSON {type(data).__name__}, expected an object")
        return loss_from_mapping(data, origin=str(path))
    if raw in LOSSES:
        return get_loss(raw)
    if path.suffix or len(path.parts) > 1:  # looks like a path: say so, not "unknown zoo loss"
        raise ArtefactNotFoundError(f"{raw}: no such file or directory; pass a loss JSON file (e.g. best.json), "
                                    f"a run directory or a zoo name {sorted(LOSSES)}")
    hint = did_you_mean(raw, LOSSES)
    raise ArtefactNotFoundError(
        f"loss={raw!r}: not a zoo loss and no such file or directory; zoo losses are {sorted(LOSSES)}"
        + (hint.replace("did you mean", "did you mean the zoo loss") if hint else "")
    )
