"""Expression engine: DEAP primitive sets <-> SymPy <-> Torch, validity checks, LaTeX and safe (de)serialisation.

>>> import torch
>>> from symloss.expr import compile_expr, parse_formula, stabilise
>>> m = parse_formula("u - log(1 - exp(u))", ["u"])    # ORPO's log-odds mirror map
>>> m = stabilise(m)                                     # log(1 - e^u) -> log1mexp(u)
>>> f = compile_expr(m, ["u"])
>>> bool(torch.isfinite(f(torch.tensor([-1e4, -1.0, -1e-9]))).all())
True
"""

from symloss.expr._bounds import FormulaError
from symloss.expr._canonical import canonical_key, complexity, round_constants, stabilise
from symloss.expr._checks import (
    CHECKS,
    DEFAULT_U_RANGE,
    SAFETY_U_RANGE,
    CheckResult,
    check_imitation,
    check_link,
    check_mirror,
)
from symloss.expr._compile import TORCH_OPS, CompiledExpr, CompileError, clear_cache, compile_expr
from symloss.expr._elementary import tanh
from symloss.expr._export import expr_from_json, expr_to_json, rationalise, to_latex, to_python
from symloss.expr._functions import (
    expc,
    log1mexp,
    logsigmoid,
    pdiv,
    plog,
    relu,
    sigmoid,
    softplus,
    sqrtabs,
)
from symloss.expr._grammar import FUNCTIONS, SYMBOLS, parse_formula, to_formula
from symloss.expr._primitives import (
    DEFAULT_PRIMITIVES,
    PRIMITIVES,
    SLOT_VARIABLES,
    make_pset,
    slot_variables,
    sympy_to_tree,
    tree_to_sympy,
)
from symloss.expr._trees import tree_from_string
from symloss.expr._twins import TORCH_IMPL

__all__ = [
    "CHECKS", "DEFAULT_PRIMITIVES", "DEFAULT_U_RANGE", "FUNCTIONS", "PRIMITIVES", "SAFETY_U_RANGE",
    "SLOT_VARIABLES", "SYMBOLS", "TORCH_IMPL",
    "TORCH_OPS", "CheckResult", "CompileError", "CompiledExpr", "FormulaError", "canonical_key",
    "check_imitation", "check_link", "check_mirror", "clear_cache", "compile_expr", "complexity", "expc",
    "expr_from_json", "expr_to_json", "log1mexp", "logsigmoid", "make_pset", "parse_formula", "pdiv", "plog",
    "rationalise", "relu", "round_constants", "sigmoid", "slot_variables", "softplus", "sqrtabs", "stabilise",
    "sympy_to_tree", "tanh", "to_formula", "to_latex", "to_python", "tree_from_string", "tree_to_sympy",
]
