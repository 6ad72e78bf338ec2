"""Config dataclasses -> argparse options, with help text taken from the fields' attribute docstrings."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
import typing
from typing import Any


def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings of a dataclass: the string literal right after each annotated field."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and \
                isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _parse_tuple(kind: type) -> Any:
    def parse(text: str) -> tuple:
        return tuple(kind(part) for part in text.split(",") if part.strip())
    return parse


def add_config_options(parser: argparse.ArgumentParser, cls: type, *, skip: tuple[str, ...] = ()) -> None:
    """One ``--field-name`` option per field of ``cls`` (defaults left as None = the dataclass default)."""
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        flag = "--" + field.name.replace("_", "-")
        default = field.default
        help_text = f"{docs.get(field.name, '')} (default: {default!r})".replace("%", "%%")
        hint = hints[field.name]
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif isinstance(default, tuple):
            kind = type(default[0]) if default else str
            parser.add_argument(flag, type=_parse_tuple(kind), default=None, metavar="A,B,...", help=help_text)
        elif typing.get_origin(hint) is typing.Literal:
            parser.add_argument(flag, choices=typing.get_args(hint), default=None, help=help_text)
        else:
            kind = type(default) if default is not None else _optional_kind(hint)
            parser.add_argument(flag, type=kind, default=None, help=help_text)


def _optional_kind(hint: Any) -> type:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args and isinstance(args[0], type) else str


def config_kwargs(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The options the user gave (not None), as keyword arguments of ``cls``."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}
