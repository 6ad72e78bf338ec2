"""symloss's formula grammar: a small, safe parser from text to SymPy, and the printer back to text.

The grammar (whitespace is ignored)::

    expr    := term (('+' | '-') term)*
    term    := unary (('*' | '/') unary)*
    unary   := ('-' | '+') unary | power
    power   := atom (('^' | '**') unary)?          # right-associative, binds tighter than unary minus
    atom    := NUMBER | NAME | NAME '(' expr (',' expr)* ')' | '(' expr ')'

NAME is a variable of the slot (``u``, ``z``, ``u_w``, ``t``), a constant (``pi``, ``E``) or a function
from :data:`FUNCTIONS`. Nothing is ever passed to ``eval``, ``exec`` or ``sympify``: text that is not in
the grammar, such as ``__import__('os').system('ls')``, raises :class:`FormulaError` and runs nothing.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import sympy as sp
from sympy.printing.str import StrPrinter

from symloss.expr._functions import CUSTOM_FUNCTIONS

MAX_FORMULA_LENGTH = 4000
MAX_NESTING = 60
MAX_EXPONENT = 64

SYMBOLS: dict[str, sp.Symbol] = {
    name: sp.Symbol(name, real=True) for name in ("u", "z", "u_w", "u_l", "t")
}
"""Every variable any slot may use; all real."""

CONSTANTS: dict[str, sp.Expr] = {"pi": sp.pi, "E": sp.E}


def square(x: sp.Expr) -> sp.Expr:
    """x^2 (a named primitive, so trees and formulas can say ``square``)."""
    return x**2


FUNCTIONS: dict[str, tuple[int, Callable[..., sp.Expr]]] = {
    "exp": (1, sp.exp),
    "log": (1, sp.log),
    "ln": (1, sp.log),
    "sqrt": (1, sp.sqrt),
    "abs": (1, sp.Abs),
    "Abs": (1, sp.Abs),
    "tanh": (1, sp.tanh),
    "sign": (1, sp.sign),
    "square": (1, square),
    "max": (2, sp.Max),
    "Max": (2, sp.Max),
    "min": (2, sp.Min),
    "Min": (2, sp.Min),
    **{name: (2 if name == "pdiv" else 1, cls) for name, cls in CUSTOM_FUNCTIONS.items()},
}
"""Function name -> (number of arguments, SymPy constructor)."""


class FormulaError(ValueError):
    """A formula is not in symloss's grammar or uses a name its slot does not allow."""


_TOKEN = re.compile(
    r"\s*(?:(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z_0-9]*)"
    r"|(?P<op>\*\*|[-+*/^(),]))"
)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    pos: int


def _tokenize(text: str, field: str) -> list[_Token]:
    tokens, pos = [], 0
    stripped_end = len(text.rstrip())
    while pos < stripped_end:
        match = _TOKEN.match(text, pos)
        if match is None:
            raise FormulaError(
                f"{field}: unexpected character {text[pos]!r} at position {pos} in {text!r}; formulas may "
                "contain numbers, names, + - * / ^ ** ( ) and commas only"
            )
        kind = match.lastgroup or "op"
        tokens.append(_Token(kind, match.group(kind), match.start(kind)))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str, variables: Iterable[str], field: str) -> None:
        self.text, self.field = text, field
        self.variables = tuple(variables)
        unknown = [v for v in self.variables if v not in SYMBOLS]
        if unknown:
            raise FormulaError(f"{field}: unknown variable(s) {unknown}; symloss knows {sorted(SYMBOLS)}")
        self.tokens = _tokenize(text, field)
        self.index = 0
        self.depth = 0

    def error(self, message: str, token: _Token | None = None) -> FormulaError:
        where = f" at position {token.pos}" if token is not None else " at the end"
        return FormulaError(f"{self.field}: {message}{where} in {self.text!r}")

    def peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, text: str | None = None) -> _Token:
        token = self.peek()
        if token is None or (text is not None and token.text != text):
            expected = f"{text!r}" if text else "more input"
            raise self.error(f"expected {expected}", token)
        self.index += 1
        return token

    def parse(self) -> sp.Expr:
        if not self.tokens:
            raise FormulaError(f"{self.field}: empty formula")
        expr = self.expr()
        if self.peek() is not None:
            raise self.error(f"unexpected {self.peek().text!r}", self.peek())
        return expr

    def nested(self, parse: Callable[[], sp.Expr]) -> sp.Expr:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(f"formula nested deeper than {MAX_NESTING} levels", self.peek())
        try:
            return parse()
        finally:
            self.depth -= 1

    def expr(self) -> sp.Expr:
        result = self.term()
        while (tok := self.peek()) is not None and tok.text in "+-" and tok.kind == "op":
            self.take()
            rhs = self.term()
            result = result + rhs if tok.text == "+" else result - rhs
        return result

    def term(self) -> sp.Expr:
        result = self.unary()
        while (tok := self.peek()) is not None and tok.text in ("*", "/"):
            self.take()
            rhs = self.unary()
            result = result * rhs if tok.text == "*" else result / rhs
        return result

    def unary(self) -> sp.Expr:
        tok = self.peek()
        if tok is not None and tok.text in ("-", "+"):
            self.take()
            operand = self.nested(self.unary)
            return -operand if tok.text == "-" else operand
        return self.power()

    def power(self) -> sp.Expr:
        base = self.atom()
        tok = self.peek()
        if tok is not None and tok.text in ("^", "**"):
            self.take()
            exponent = self.nested(self.unary)
            if exponent.is_Number and abs(exponent) > MAX_EXPONENT:
                raise self.error(f"exponent {exponent} is larger than {MAX_EXPONENT} in magnitude", tok)
            return base**exponent
        return base

    def atom(self) -> sp.Expr:
        tok = self.take()
        if tok.kind == "number":
            return sp.Integer(tok.text) if tok.text.isdigit() else sp.Float(tok.text)
        if tok.text == "(":
            inner = self.nested(self.expr)
            self.take(")")
            return inner
        if tok.kind != "name":
            raise self.error(f"unexpected {tok.text!r}", tok)
        nxt = self.peek()
        if nxt is not None and nxt.text == "(":
            return self.call(tok)
        if tok.text in self.variables:
            return SYMBOLS[tok.text]
        if tok.text in CONSTANTS:
            return CONSTANTS[tok.text]
        raise self.unknown_name(tok)

    def call(self, name: _Token) -> sp.Expr:
        if name.text not in FUNCTIONS:
            raise self.unknown_name(name)
        arity, build = FUNCTIONS[name.text]
        self.take("(")
        args = [self.nested(self.expr)]
        while (tok := self.peek()) is not None and tok.text == ",":
            self.take()
            args.append(self.nested(self.expr))
        self.take(")")
        if len(args) != arity:
            raise self.error(f"{name.text}() takes {arity} argument(s), got {len(args)}", name)
        return build(*args)

    def unknown_name(self, tok: _Token) -> FormulaError:
        known = [*self.variables, *CONSTANTS, *FUNCTIONS]
        close = difflib.get_close_matches(tok.text, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return self.error(
            f"unknown name {tok.text!r} (variables here: {list(self.variables)}; "
            f"functions: {sorted(set(FUNCTIONS))}){hint}",
            tok,
        )


def parse_formula(text: str, variables: Iterable[str], *, field: str = "formula") -> sp.Expr:
    """Parse ``text`` in symloss's grammar into a SymPy expression over ``variables``.

    Raises :class:`FormulaError` (a ``ValueError``) naming ``field`` when the text is not in the grammar,
    is too long or too deeply nested, or uses a name outside ``variables``, the constants and the functions.
    """
    if not isinstance(text, str):
        raise FormulaError(f"{field}: expected a formula string, got {type(text).__name__}")
    if len(text) > MAX_FORMULA_LENGTH:
        raise FormulaError(f"{field}: formula of {len(text)} characters; at most {MAX_FORMULA_LENGTH}")
    try:
        return _Parser(text, variables, field).parse()
    except RecursionError as exc:  # pragma: no cover - guarded by MAX_NESTING
        raise FormulaError(f"{field}: formula too deeply nested") from exc


class _GrammarPrinter(StrPrinter):
    """SymPy's str printer, with floats printed to full precision so text round-trips exactly."""

    def _print_Float(self, expr: sp.Float) -> str:
        return repr(float(expr))


def to_formula(expr: sp.Expr) -> str:
    """Print ``expr`` in symloss's grammar; ``parse_formula(to_formula(e), ...)`` gives ``e`` back."""
    return _GrammarPrinter({"full_prec": True}).doprint(expr)
