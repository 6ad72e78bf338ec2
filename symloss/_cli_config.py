"""Config dataclasses -> argparse options, with help text taken from the fields' attribute docstrings."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import re
import textwrap
import typing
from typing import Any

_RST_ROLE = re.compile(r":[a-z]+:`~?([^`]*)`")
_RST_LITERAL = re.compile(r"``([^`]*)``")


def plain_text(doc: str) -> str:
    """An RST docstring as plain one-line text: ``x`` -> x, :class:`~a.B` -> a.B, whitespace collapsed."""
    return " ".join(_RST_LITERAL.sub(r"\1", _RST_ROLE.sub(r"\1", doc)).split())


def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings of a dataclass (the string literal right after each annotated field), as plain text."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and \
                isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
            docs[node.target.id] = plain_text(nxt.value.value)
    return docs


def _tuple_parser(flag: str, hint: Any, example: tuple) -> Any:
    """argparse ``type=`` for a tuple field: comma-separated parts, their count checked for fixed-size tuples."""
    args = typing.get_args(hint)
    variable = len(args) == 2 and args[1] is Ellipsis
    kind = args[0] if args and isinstance(args[0], type) else (type(example[0]) if example else str)
    count = None if variable or not args else len(args)
    sample = ",".join(str(v) for v in example)

    def parse(text: str) -> tuple:
        parts = [part.strip() for part in text.split(",") if part.strip()]
        if count is not None and len(parts) != count:
            raise argparse.ArgumentTypeError(
                f"{text!r}: expected {count} comma-separated values, got {len(parts)}; e.g. {flag}={sample}")
        try:
            return tuple(kind(part) for part in parts)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r}: expected comma-separated {kind.__name__} values; e.g. {flag}={sample}") from None
    return parse


def add_config_options(parser: argparse.ArgumentParser, cls: type, *, skip: tuple[str, ...] = (),
                       only: tuple[str, ...] | None = None, concrete: bool = False,
                       defaults: dict[str, Any] | None = None, default_text: str | None = None) -> None:
    """One ``--field-name`` option per field of ``cls`` (all, or ``only`` these, less ``skip``).

    An option's value is None unless given (so the config's own default, or a preset's, applies); with
    ``concrete`` it is the dataclass default; ``defaults`` gives other defaults by field. The help ends
    with ``(default: <that default>)``, or ``(default: <default_text>)`` when that is given.
    """
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    defaults = defaults or {}
    for field in dataclasses.fields(cls):
        if field.name in skip or (only is not None and field.name not in only):
            continue
        flag = "--" + field.name.replace("_", "-")
        default = field.default
        hint = hints[field.name]
        help_text = docs.get(field.name, "")
        shown = defaults.get(field.name, default)
        fixed = isinstance(default, tuple) and Ellipsis not in typing.get_args(hint)
        if fixed and default and isinstance(default[0], int | float) and min(default) < 0:
            help_text += f" Write {flag}=A,B when A is negative."
        if default_text is not None and field.name not in defaults:
            shown = default_text
        elif isinstance(shown, tuple):
            shown = ",".join(map(str, shown))
        help_text = f"{help_text} (default: {shown})".replace("%", "%%")
        value = defaults.get(field.name, default if concrete else None)
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=value, help=help_text)
        elif isinstance(default, tuple):
            parser.add_argument(flag, type=_tuple_parser(flag, hint, default), default=value,
                                metavar="A,B" if fixed else "A,B,...", help=help_text)
        elif choices := _literal_choices(hint):  # checked by the config, which suggests a close name
            parser.add_argument(flag, default=value, metavar="{" + ",".join(map(str, choices)) + "}", help=help_text)
        else:
            kind = type(default) if default is not None else _optional_kind(hint)
            parser.add_argument(flag, type=kind, default=value, help=help_text)


def _literal_choices(hint: Any) -> tuple:
    """The choices of a ``Literal`` inside a union (``Literal["a", "b"] | Callable``), or ()."""
    if typing.get_origin(hint) is typing.Literal:
        return typing.get_args(hint)
    literals = [a for a in typing.get_args(hint) if typing.get_origin(a) is typing.Literal]
    return typing.get_args(literals[0]) if literals else ()


def _optional_kind(hint: Any) -> type:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args and isinstance(args[0], type) else str


def config_kwargs(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The options the user gave (not None), as keyword arguments of ``cls``."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}
