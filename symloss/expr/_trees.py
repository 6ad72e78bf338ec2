"""DEAP trees from their prefix text, without ``eval``.

DEAP's own ``PrimitiveTree.from_string`` evaluates unknown tokens; :func:`tree_from_string` parses the
prefix form ``add(u, mul(-1.0, log1mexp(u)))`` against a primitive set and accepts only its names and
plain numbers.
"""

from __future__ import annotations

import math
import re

from deap import gp

from symloss.expr._bounds import FormulaError
from symloss.expr._primitives import _constant
from symloss.validation import short_repr

_TOKEN = re.compile(r"\s*([A-Za-z_][A-Za-z_0-9]*|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[(),])")


def tree_from_string(text: str, pset: gp.PrimitiveSet) -> gp.PrimitiveTree:
    """Parse DEAP's prefix notation against ``pset`` without evaluating anything.

    Raises FormulaError (a ValueError) naming the token when a name is not in ``pset`` or the text is malformed.
    """
    tokens, pos = [], 0
    while pos < len(text.rstrip()):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise FormulaError(f"tree {short_repr(text)}: unexpected character {text[pos]!r} at position {pos}")
        tokens.append(match.group(1))
        pos = match.end()
    nodes = []
    for token in tokens:
        if token in "(),":
            continue
        if token in pset.mapping:
            node = pset.mapping[token]
            if isinstance(node, type):  # an ephemeral class named by its constant name: not valid here
                raise FormulaError(f"tree {short_repr(text)}: {token!r} is not a value")
            nodes.append(node)
        elif token[0].isalpha() or token[0] == "_":  # a name (also 'nan', 'inf'), never a number
            raise FormulaError(f"tree {short_repr(text)}: unknown name {token!r} for primitive set {pset.name!r}")
        else:
            value = float(token)
            if not math.isfinite(value):
                raise FormulaError(f"tree {short_repr(text)}: constant {token!r} is not finite")
            nodes.append(_constant(pset, value))
    tree = gp.PrimitiveTree(nodes)
    _check_arity(tree, text)
    return tree


def _check_arity(tree: gp.PrimitiveTree, text: str) -> None:
    needed = 1
    for node in tree:
        needed += node.arity - 1
        if needed < 0:
            break
    if needed != 0 or not len(tree):
        raise FormulaError(f"tree {short_repr(text)}: malformed (arity mismatch)")
