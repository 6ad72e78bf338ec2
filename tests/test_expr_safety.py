"""Safety of the expression layer: no code runs from text, and every formula costs bounded work.

- no module of the package calls eval, exec, sympify, parse_expr, lambdify or DEAP's compile;
- a code-injection payload given to any public function runs nothing and raises a named error;
- the inputs that used to hang or escape as OverflowError/MemoryError/RecursionError are refused with a
  FormulaError naming the limit, within 1 s;
- a fixed-seed sample of benchmarks/fuzz_formulas.py finds no traceback, no slow input, no code
  execution and no non-finite value let through by the checks.
"""

import ast
import importlib.util
import json
import pathlib
import sys
import time

import pytest
import sympy as sp
import torch

import symloss
import symloss.expr as ex
from symloss.expr import SYMBOLS, FormulaError
from symloss.objectives import MirrorLoss

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = pathlib.Path(symloss.__file__).resolve().parent
FORBIDDEN_CALLS = {"eval", "exec", "__import__", "sympify", "parse_expr", "lambdify", "S"}
FORBIDDEN_IMPORTS = {"sympify", "parse_expr", "lambdify", "S"}
U = SYMBOLS["u"]


def _violations(path: pathlib.Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        where = f"{path.relative_to(PACKAGE.parent)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Call):
            fn = node.func
            if isinstance(fn, ast.Name) and fn.id in FORBIDDEN_CALLS:
                found.append(f"{where}: {fn.id}(...)")
            elif isinstance(fn, ast.Attribute) and fn.attr in FORBIDDEN_CALLS - {"eval", "exec"}:
                found.append(f"{where}: .{fn.attr}(...)")  # sp.sympify, sp.S, ...; .eval() of torch modules is fine
            elif isinstance(fn, ast.Attribute) and fn.attr == "compile" and isinstance(fn.value, ast.Name) \
                    and fn.value.id == "gp":
                found.append(f"{where}: gp.compile(...)")
        elif isinstance(node, ast.ImportFrom) and any(a.name in FORBIDDEN_IMPORTS for a in node.names):
            found.append(f"{where}: from {node.module} import {[a.name for a in node.names]}")
    return found


def test_no_module_of_the_package_evaluates_text():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20
    violations = [v for path in files for v in _violations(path)]
    assert violations == [], "calls that can evaluate text:\n" + "\n".join(violations)


def test_the_source_scan_finds_what_it_forbids(tmp_path, monkeypatch):
    bad = PACKAGE / "_scan_probe.py"
    monkeypatch.setattr(pathlib.Path, "read_text", lambda self: "import sympy as sp\nsp.sympify(x)\neval(y)\n"
                        "from sympy import sympify\ngp.compile(t, p)\nmodel.eval()\n")
    assert len(_violations(bad)) == 4


PAYLOAD = "__import__('os').system('touch pwned')"
PSET = ex.make_pset("mirror")
FORMULA_FUNCTIONS = {
    "parse_formula": lambda p: ex.parse_formula(p, ["u"]),
    "compile_expr": lambda p: ex.compile_expr(p, ["u"]),
    "canonical_key": ex.canonical_key,
    "stabilise": ex.stabilise,
    "round_constants": ex.round_constants,
    "complexity": ex.complexity,
    "check_mirror": ex.check_mirror,
    "check_link": ex.check_link,
    "check_imitation": ex.check_imitation,
    "CHECKS": lambda p: [check(p) for check in ex.CHECKS.values()],
    "sympy_to_tree": lambda p: ex.sympy_to_tree(p, PSET),
    "tree_from_string": lambda p: ex.tree_from_string(p, PSET),
    "tree_to_sympy": ex.tree_to_sympy,
    "to_latex": ex.to_latex,
    "to_python": lambda p: ex.to_python(p, ["u"]),
    "to_formula": ex.to_formula,
    "rationalise": ex.rationalise,
    "expr_to_json": lambda p: ex.expr_to_json(p, ["u"]),
    "expr_from_json": lambda p: ex.expr_from_json({"formula": p, "variables": ["u"]}),
    "expr_from_json(text)": lambda p: ex.expr_from_json(json.dumps({"formula": p, "variables": ["u"]})),
    "MirrorLoss": lambda p: MirrorLoss(mirror=p),
    "MirrorLoss.from_dict": lambda p: MirrorLoss.from_dict({"link": p}),
}
SYMPY_FUNCTIONS = ["expc", "log1mexp", "logsigmoid", "pdiv", "plog", "relu", "sigmoid", "softplus", "sqrtabs", "tanh"]
NOT_FORMULA_FUNCTIONS = {"clear_cache", "make_pset", "slot_variables", "square"}


def test_every_public_function_is_covered_by_the_payload_test():
    functions = {name for name in ex.__all__ if callable(getattr(ex, name)) and not isinstance(getattr(ex, name), type)}
    classes = {name for name in ex.__all__ if isinstance(getattr(ex, name), type)}
    assert functions <= set(FORMULA_FUNCTIONS) | NOT_FORMULA_FUNCTIONS
    assert {c for c in classes if issubclass(getattr(ex, c), sp.Function)} == set(SYMPY_FUNCTIONS)


@pytest.mark.parametrize("name", sorted(FORMULA_FUNCTIONS))
@pytest.mark.parametrize("payload", [PAYLOAD, "__import__('builtins').__setattr__('pwned', 1)",
                                     "u.__class__.__mro__[-1].__subclasses__()", "lambda: open('pwned', 'w')"])
def test_payloads_run_nothing_and_raise_a_named_error(name, payload, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FormulaError) as info:
        FORMULA_FUNCTIONS[name](payload)
    assert str(info.value)
    assert list(tmp_path.iterdir()) == []
    import builtins
    assert not hasattr(builtins, "pwned")


@pytest.mark.parametrize("name", SYMPY_FUNCTIONS)
def test_symloss_functions_refuse_text_arguments(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cls = getattr(ex, name)
    args = [PAYLOAD] * (2 if name == "pdiv" else 1)
    with pytest.raises(TypeError, match="parse_formula"):
        cls(*args)
    assert list(tmp_path.iterdir()) == []


def test_strings_in_the_grammar_are_accepted_where_expressions_are():
    assert ex.compile_expr("u - log1mexp(u)", ["u"]) is ex.compile_expr(U - ex.log1mexp(U), ["u"])
    assert ex.canonical_key("u + u") == ex.canonical_key(2 * U)
    assert ex.stabilise("log(1 + exp(u))") == ex.softplus(U)
    assert ex.check_mirror("u") and ex.to_latex("u^2") == "u^{2}"
    with pytest.raises(FormulaError, match="expected a formula"):
        ex.canonical_key(["u"])


def _deep(depth):
    expr = U
    for _ in range(depth):
        expr = sp.tanh(expr, evaluate=False)
    return expr


def _shared(levels):
    expr = U
    for _ in range(levels):  # each level uses the previous one twice: 2^levels nodes as a tree
        expr = ex.softplus(expr) + ex.sigmoid(expr)
    return expr


@pytest.mark.parametrize("text, fragment", [
    ("exp(exp(exp(100)))*u", "beyond float64's range (magnitude at most 1.8e+308)"),
    ("softplus((sqrt(Abs(1e309)))^64)", "must lie in [-1e+06, 1e+06]"),
    ("exp(exp(1000.0))*u", "beyond float64's range"),
    ("exp(exp(1000.0 + u - u))", "beyond float64's range"),
    ("((((999999/1000000)^64)^64)^64)^64*u", "more than 4096 bits"),
    ("(1000*u)^3", "must lie in [-1e+06, 1e+06]"),
    ("u^(2^10)", "exponent"),
    ("u*" + "9" * 400, "must lie in [-1e+06, 1e+06]"),
    ("u + 1e999999", "must lie in [-1e+06, 1e+06]"),
    ("log(0) + u", "not a finite real number"),
    ("sqrt(-1) * u", "not a finite real number"),
    ("exp(" * 11 + "u" + ")" * 11, "at most 10 (MAX_EXP_NESTING)"),
    ("(" * 61 + "u" + ")" * 61, "nested deeper than 60 levels"),
    ("u" + "*1000" * 3, "must lie in [-1e+06, 1e+06]"),
    ("u^64^64", "must lie in [-1e+06, 1e+06]"),
    ("u^exp(5)", "exponent exp(5) is larger than 64 in magnitude"),
])
def test_formulas_that_used_to_hang_or_crash_are_refused_quickly(text, fragment):
    start = time.process_time()
    with pytest.raises(FormulaError) as info:
        MirrorLoss(mirror=text[:4000])
    assert fragment in str(info.value)
    assert time.process_time() - start < 1.0


@pytest.mark.parametrize("expr, fragment", [
    (sp.exp(sp.exp(sp.exp(100))) * U, "beyond float64's range"),
    (U * sp.Float(1e300), "must lie in [-1e+06, 1e+06]"),
    (U * sp.Float("1e9888"), "bits of precision; at most 1024"),
    (U + sp.oo, "not a finite real number"),
    (U + sp.I, "not a finite real number"),
    (_deep(150), "nested deeper than 100 levels"),
    (_deep(5000), "nested deeper than 100 levels"),
    (_shared(40), "more than 2000 nodes"),
])
def test_expressions_beyond_the_limits_are_refused_everywhere(expr, fragment):
    start = time.process_time()
    for fn in (ex.canonical_key, ex.stabilise, ex.to_latex, ex.complexity):
        with pytest.raises(FormulaError) as info:
            fn(expr)
        assert fragment in str(info.value)
    with pytest.raises(ex.CompileError):
        ex.compile_expr(expr, ["u"])
    result = ex.check_mirror(expr)
    assert not result and fragment in result.reason
    assert time.process_time() - start < 2.0


SLOW_IN_SYMPY = [  # SymPy's own tanh/Abs/Max asked as_real_imag and factor_terms: seconds, exponential in depth
    "tanh(" * 10 + "log(u)" + ")" * 10,
    "pdiv(abs(sqrt(sqrt(min(-(square(sqrt(u))), -(max(-(square((sigmoid(2) * (log(u) - t)))), sqrt(u - 1))))))), "
    "square(square(square(softplus((log(tanh(max(relu((0.5 / sqrt(u - 1))), log(plog(2))))) / log(u + 1)))))))",
    "softplus(log(softplus(log(log(log(expc(tanh(exp(tanh(tanh(tanh((tanh(sqrt(((tanh((log(-(sqrt(log(log(expc(sqrt(("
    "tanh(exp(exp(log(expc((expc(sqrt(sqrt(softplus(tanh(expc(-(u)))))))))))))))))))))))))))))))))))))))))",
]


@pytest.mark.parametrize("text", SLOW_IN_SYMPY)
def test_formulas_slow_in_sympy_are_handled_within_a_second(text):
    start = time.process_time()
    try:
        expr = ex.stabilise(ex.parse_formula(text, ["u", "t"]))
        ex.check_mirror(expr, uses_t=True), ex.canonical_key(expr), ex.to_latex(expr)
    except FormulaError as exc:
        assert str(exc)
    assert time.process_time() - start < 1.0


def test_every_step_of_a_long_valid_formula_is_fast():
    text = "u + " + " + ".join(f"softplus(u - {i})*tanh(1/{i + 1})" for i in range(33))
    assert 900 < len(text) <= 1000
    start = time.process_time()
    loss = MirrorLoss(mirror=text, reference_free=True)
    assert ex.check_mirror(loss.mirror)
    values = loss.fn("mirror")(-torch.logspace(-8, 4, 100, dtype=torch.float64), torch.tensor(0.0))
    assert torch.isfinite(values).all()
    ex.to_latex(loss.mirror), ex.to_python(loss.mirror, ["u"]), MirrorLoss.from_dict(loss.to_dict())
    assert time.process_time() - start < 1.0


def _fuzz_module():
    spec = importlib.util.spec_from_file_location("fuzz_formulas", ROOT / "benchmarks" / "fuzz_formulas.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_fuzz_sample_finds_nothing():
    fuzz = _fuzz_module()
    counts, executions = fuzz.fuzz(300, 300, seed=0)
    assert executions == 0
    for kind, c in counts.items():
        assert c.inputs == 300, kind
        assert c.accepted > 50 and c.passed_check > 20, (kind, fuzz.table(counts, executions))
        assert (c.tracebacks, c.over_1s_cpu, c.non_finite_let_through) == (0, 0, 0), (kind, c.examples)
