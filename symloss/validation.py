"""Argument checks shared by every config, loader and the CLI, so that each error reads the same way.

Every message has one shape: ``name=value: must be <what is accepted>[; <fix>]``, e.g.
``elite=16: must be an integer in [0, 15] (fewer than population); lower elite or raise population``.
Unknown names get a "did you mean" from :func:`difflib.get_close_matches`.
"""

from __future__ import annotations

import difflib
import math
import numbers
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["ConfigError", "check_bool", "check_choice", "check_device", "check_finite", "check_range",
           "check_tuple", "did_you_mean", "short_repr"]


class ConfigError(ValueError):
    """A user-supplied value is out of its accepted range or set; the message names the fix."""


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters: a message never repeats a huge input."""
    shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def did_you_mean(value: Any, choices: Iterable[str], *, cutoff: float = 0.6) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices`` to ``value`` (ignoring case), or ``""``."""
    by_lower = {str(c).lower(): str(c) for c in choices}
    close = difflib.get_close_matches(str(value).lower(), list(by_lower), n=1, cutoff=cutoff)
    return f"; did you mean {by_lower[close[0]]!r}?" if close else ""


def _fail(name: str, value: Any, accepted: str, fix: str) -> ConfigError:
    return ConfigError(f"{name}={value!r}: must be {accepted}" + (f"; {fix}" if fix else ""))


def check_choice(name: str, value: Any, choices: Iterable[str], *, fix: str = "") -> Any:
    """``value`` if it is one of ``choices``; else a :class:`ConfigError` listing them, with a suggestion.

    ``fix`` continues the list of what is accepted, e.g. ``"or a callable"``.
    """
    accepted = list(choices)
    if isinstance(value, str) and value in accepted:
        return value
    raise ConfigError(f"{name}={value!r}: must be one of {accepted}" + (f" {fix}" if fix else "")
                      + did_you_mean(value, accepted))


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is a real bool; strings such as ``"no"`` (truthy in Python) are refused."""
    if isinstance(value, bool):
        return value
    raise _fail(name, value, "true or false (a JSON boolean, not a string or number)", "")


def _is_number(value: Any, integer: bool = False) -> bool:
    """A finite real number (an integer when ``integer``; NumPy scalars count); bools are not numbers here."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral if integer else numbers.Real):
        return False
    return math.isfinite(value)


def check_finite(name: str, value: Any, *, fix: str = "") -> float:
    """``value`` as a float if it is a finite real number (bools refused); else a :class:`ConfigError`."""
    if not _is_number(value):
        raise _fail(name, value, "a finite number", fix)
    return float(value)


def check_tuple(name: str, value: Any, *, length: int, integer: bool = False, what: str = "",
                example: str = "") -> tuple:
    """``value`` as a tuple if it holds ``length`` finite numbers (ints when ``integer``); else a ConfigError.

    E.g. ``constant_range=(1.0,): must be 2 finite numbers (low, high); e.g. (-1.0, 1.0)``.
    """
    numbers = isinstance(value, tuple | list) and all(_is_number(v, integer) for v in value)
    if numbers and len(value) == length:
        return tuple(value)
    kind = "integers" if integer else "finite numbers"
    raise _fail(name, tuple(value) if isinstance(value, list) else value,
                f"{length} {kind}" + (f" ({what})" if what else ""), f"e.g. {example}" if example else "")


_DEVICE = re.compile(r"cuda(?::(\d+))?")


def check_device(name: str, value: Any, *, here: bool = True) -> Any:
    """``value`` if it names a Torch device usable here: ``cpu``, or ``cuda``/``cuda:<index>`` with a GPU.

    Checked before any work is done, so that a machine without CUDA fails at once with the fix. With
    ``here=False`` (the work runs on other machines, e.g. Ray workers) only the spelling is checked.
    """
    text = str(value)
    if text == "cpu":
        return value
    match = _DEVICE.fullmatch(text)
    if match is None:
        raise ConfigError(f"{name}={value!r}: must be 'cpu', 'cuda' or 'cuda:<index>'"
                          f"{did_you_mean(text, ['cpu', 'cuda'])}")
    if not here:
        return value
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(f"{name}={value!r}: CUDA is not available here; use {name}='cpu' "
                          f"(torch {torch.__version__} sees no GPU)")
    count = torch.cuda.device_count()
    if match.group(1) is not None and int(match.group(1)) >= count:
        raise ConfigError(f"{name}={value!r}: must be 'cuda' or 'cuda:<index>' with index in "
                          f"[0, {count - 1}] ({count} CUDA device(s) visible)")
    return value


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def _interval(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{_num(lo)}, {_num(hi)}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {_num(lo)}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {_num(hi)}"
    return ""


def check_range(name: str, value: Any, *, lo: float | None = None, hi: float | None = None,
                lo_open: bool = False, hi_open: bool = False, integer: bool = False,
                why: str = "", fix: str = "") -> Any:
    """``value`` if it is a finite number (an int when ``integer``) in the interval; else a ConfigError.

    The message states the interval, e.g. ``lr=inf: must be a finite number > 0``; ``why`` is added in
    parentheses after the interval and ``fix`` after a semicolon.
    """
    kind = "an integer" if integer else "a finite number"
    accepted = f"{kind} {_interval(lo, hi, lo_open, hi_open)}".rstrip() + (f" ({why})" if why else "")
    if not _is_number(value, integer):
        raise _fail(name, value, accepted, fix)
    too_low = lo is not None and (value <= lo if lo_open else value < lo)
    too_high = hi is not None and (value >= hi if hi_open else value > hi)
    if too_low or too_high:
        raise _fail(name, value, accepted, fix)
    return value
