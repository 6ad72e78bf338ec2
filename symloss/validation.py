"""Argument checks shared by every config, loader and the CLI, so that each error reads the same way.

Every message has one shape: ``name=value: must be <what is accepted>[; <fix>]``, e.g.
``elite=16: must be an integer in [0, 15] (fewer than population); lower elite or raise population``.
Unknown names get a "did you mean" from :func:`difflib.get_close_matches`.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from typing import Any

__all__ = ["ConfigError", "check_bool", "check_choice", "check_finite", "check_range", "did_you_mean"]


class ConfigError(ValueError):
    """A user-supplied value is out of its accepted range or set; the message names the fix."""


def did_you_mean(value: Any, choices: Iterable[str], *, cutoff: float = 0.6) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices`` to ``value``, or ``""`` when none is close."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=cutoff)
    return f"; did you mean {close[0]!r}?" if close else ""


def _fail(name: str, value: Any, accepted: str, fix: str) -> ConfigError:
    return ConfigError(f"{name}={value!r}: must be {accepted}" + (f"; {fix}" if fix else ""))


def check_choice(name: str, value: Any, choices: Iterable[str], *, fix: str = "") -> Any:
    """``value`` if it is one of ``choices``; else a :class:`ConfigError` listing them, with a suggestion."""
    accepted = list(choices)
    if isinstance(value, str) and value in accepted:
        return value
    raise ConfigError(f"{name}={value!r}: must be one of {accepted}{did_you_mean(value, accepted)}"
                      + (f"; {fix}" if fix else ""))


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is a real bool; strings such as ``"no"`` (truthy in Python) are refused."""
    if isinstance(value, bool):
        return value
    raise _fail(name, value, "true or false (a JSON boolean, not a string or number)", "")


def check_finite(name: str, value: Any, *, fix: str = "") -> float:
    """``value`` as a float if it is a finite real number (bools refused); else a :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(name, value, "a finite number", fix)
    return float(value)


def _interval(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {hi:g}"
    return "any value"


def check_range(name: str, value: Any, *, lo: float | None = None, hi: float | None = None,
                lo_open: bool = False, hi_open: bool = False, integer: bool = False,
                why: str = "", fix: str = "") -> Any:
    """``value`` if it is a finite number (an int when ``integer``) in the interval; else a ConfigError.

    The message states the interval, e.g. ``lr=inf: must be a finite number > 0``; ``why`` is added in
    parentheses after the interval and ``fix`` after a semicolon.
    """
    kind = "an integer" if integer else "a finite number"
    accepted = f"{kind} {_interval(lo, hi, lo_open, hi_open)}".rstrip() + (f" ({why})" if why else "")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(name, value, accepted, fix)
    if integer and not isinstance(value, int):
        raise _fail(name, value, accepted, fix)
    if not math.isfinite(value):
        raise _fail(name, value, accepted, fix)
    too_low = lo is not None and (value <= lo if lo_open else value < lo)
    too_high = hi is not None and (value >= hi if hi_open else value > hi)
    if too_low or too_high:
        raise _fail(name, value, accepted, fix)
    return value
