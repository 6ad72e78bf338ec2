import math

import mpmath
import pytest
import sympy as sp
import torch

from symloss.expr import (
    SYMBOLS,
    CompileError,
    canonical_key,
    compile_expr,
    complexity,
    log1mexp,
    parse_formula,
    pdiv,
    plog,
    sqrtabs,
    stabilise,
)

U, T = SYMBOLS["u"], SYMBOLS["t"]
FORMULAS = [
    "u - log1mexp(u)", "softplus(u) * tanh(u) + square(u)", "pdiv(u, u + 1) + plog(u)", "expc(-u) * 0.01",
    "sqrtabs(u) + logsigmoid(u) - sigmoid(u)", "max(u, -3) + min(u, -1) + abs(u)", "u^3 - u^-1 + sqrt(-u)",
    "exp(u * t) + relu(u + 1) * t",
]


def sympy_value(expr, **values):
    return float(expr.evalf(30, subs={SYMBOLS[k]: sp.Float(v, 30) for k, v in values.items()}))


@pytest.mark.parametrize("text", FORMULAS)
def test_compiled_values_match_sympy_on_random_inputs(text):
    expr = parse_formula(text, ["u", "t"])
    fn = compile_expr(expr, ["u", "t"])
    gen = torch.Generator().manual_seed(1)
    u = -torch.rand(20, generator=gen, dtype=torch.float64) * 10 - 1e-3
    t = torch.rand(20, generator=gen, dtype=torch.float64)
    got = fn(u, t)
    for i in range(20):
        want = sympy_value(expr, u=u[i].item(), t=t[i].item())
        assert got[i].item() == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_stable_functions_have_finite_gradients_at_their_edges():
    x = torch.tensor([-1e4, -50.0, -1.0, -1e-9, 0.0, 1e-12, 3.0], dtype=torch.float64, requires_grad=True)
    for fn in (log1mexp(U), pdiv(1, U), plog(U), sqrtabs(U), pdiv(U, U), stabilise(sp.log(1 + sp.exp(U)))):
        x.grad = None
        compiled = compile_expr(fn, ["u"])
        value = compiled(x)
        value.sum().backward()
        assert torch.isfinite(value).all(), fn
        assert torch.isfinite(x.grad).all(), fn


def test_log1mexp_is_accurate_near_zero_and_far_below():
    f = compile_expr(log1mexp(U), ["u"])
    x = torch.tensor([-1e-10, -0.5, -0.7, -40.0], dtype=torch.float64)
    with mpmath.workdps(50):
        want = torch.tensor([float(mpmath.log(-mpmath.expm1(v))) for v in x.tolist()], dtype=torch.float64)
    torch.testing.assert_close(f(x), want, rtol=1e-12, atol=0)


def test_constant_expression_returns_tensor_of_input_shape():
    fn = compile_expr(sp.Integer(3) + sp.pi, ["u"])
    out = fn(torch.zeros(2, 3, dtype=torch.float32))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 3) and out.dtype == torch.float32
    assert torch.allclose(out, torch.full((2, 3), 3 + math.pi))


def test_expression_ignoring_an_input_broadcasts_to_all_inputs():
    fn = compile_expr(2 * U, ["u", "t"])
    assert fn(torch.ones(4), torch.ones(3, 1)).shape == (3, 4)


def test_dtype_and_float_inputs():
    fn = compile_expr(U * T, ["u", "t"])
    assert fn(torch.ones(3, dtype=torch.float16), 0.5).dtype == torch.float16
    assert fn(torch.ones(3, dtype=torch.float64), 0.5).dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    expr = parse_formula(FORMULAS[0], ["u"])
    fn = compile_expr(expr, ["u"])
    x = -torch.rand(100, dtype=torch.float64) * 5
    torch.testing.assert_close(fn(x.cuda()).cpu(), fn(x))


def test_cache_is_keyed_by_canonical_form():
    a = compile_expr(parse_formula("u + u", ["u"]), ["u"])
    b = compile_expr(parse_formula("2*u", ["u"]), ["u"])
    assert a is b
    assert canonical_key(U + U) == canonical_key(2 * U) != canonical_key(3 * U)
    assert complexity(parse_formula("u - log1mexp(u)", ["u"])) == 6


def test_unknown_symbol_and_unsupported_operation_raise():
    with pytest.raises(CompileError, match="unknown symbol 'z'"):
        compile_expr(SYMBOLS["z"] + U, ["u"])
    with pytest.raises(CompileError, match="'sin'.*TORCH_OPS"):
        compile_expr(sp.sin(U), ["u"])
    with pytest.raises(CompileError, match="not a finite real"):
        compile_expr(U + sp.log(-1), ["u"])


def test_stabilise_rewrites_overflow_prone_patterns():
    e = stabilise(parse_formula("log(1 + exp(u)) + log(1 - exp(u)) + 1/(1 + exp(-u))", ["u"]))
    names = {type(f).__name__ for f in e.atoms(sp.Function)}
    assert names == {"softplus", "log1mexp", "sigmoid"}
    fn = compile_expr(e, ["u"])
    assert torch.isfinite(fn(torch.tensor([-1e4, 800.0 * -1, -1e-8], dtype=torch.float32))).all()
