import pickle
import random

import pytest
import sympy as sp
import torch
from deap import gp

from symloss.expr import (
    DEFAULT_U_RANGE,
    SAFETY_U_RANGE,
    SYMBOLS,
    FormulaError,
    check_imitation,
    check_link,
    check_mirror,
    compile_expr,
    expc,
    make_pset,
    parse_formula,
    pdiv,
    plog,
    stabilise,
    sympy_to_tree,
    tree_to_sympy,
)
from symloss.expr._checks import u_grid


def mirror(text, t=False):
    return stabilise(parse_formula(text, ["u", "t"] if t else ["u"]))


@pytest.mark.parametrize("text", ["u", "u - log(1 - exp(u))", "softplus(u)", "2*u + tanh(u)", "-exp(-u/100)"])
def test_valid_mirror_maps_pass(text):
    assert check_mirror(mirror(text))
    assert check_mirror(text)  # text is parsed with symloss's grammar


def test_zoo_mirror_maps_pass_on_the_default_range():
    import symloss as sl
    assert SAFETY_U_RANGE == (-1e4, -1e-8) and DEFAULT_U_RANGE == (-700, -1e-8)
    for name in sl.objectives.LOSSES:
        loss = sl.objectives.get_loss(name)
        assert check_mirror(loss.mirror.subs(SYMBOLS["t"], 0)), name
        if loss.imitation is not None:
            assert check_imitation(loss.imitation.subs(SYMBOLS["t"], 0)), name


def test_mirror_monotonicity_is_checked_on_the_data_range_and_the_reason_names_it():
    # softplus(u) underflows to a flat 0 below u = -745: fine for data in [-340, -70] and on the default
    # [-700, -1e-8], not on the whole safety range
    assert check_mirror(mirror("softplus(u)"), u_range=(-340.0, -70.0)) and check_mirror(mirror("softplus(u)"))
    result = check_mirror(mirror("softplus(u)"), u_range=SAFETY_U_RANGE)
    assert not result and "not strictly increasing in u on [-10000, -1e-08]" in result.reason
    # -(u + 100)^2 increases for u < -100 only
    assert check_mirror(mirror("-(u + 100)^2"), u_range=(-340.0, -110.0))
    result = check_mirror(mirror("-(u + 100)^2"), u_range=(-340.0, -70.0))
    assert not result and "not strictly increasing in u on [-340, -70]" in result.reason
    assert "first at u = -100" in result.reason or "first at u = -99" in result.reason


def test_finiteness_is_checked_on_the_safety_range_and_on_u_range():
    # finite above -15000: fine on the safety range, not on a data range reaching -20000
    assert check_imitation(parse_formula("log(u_w + 15000)", ["u_w"]))
    result = check_imitation(parse_formula("log(u_w + 15000)", ["u_w"]), u_range=(-2e4, -1.2e4))
    assert not result and "[-20000, -12000] (u_range)" in result.reason
    result = check_mirror(mirror("u + log(u + 5000)"), u_range=(-340.0, -70.0))
    assert not result and "non-finite values on u in [-10000, -1e-08] (the safety range)" in result.reason


@pytest.mark.parametrize("u_range", [(-1.0, -2.0), (-1.0, 0.0), (-1.0, 1.0), (float("-inf"), -1.0), "ab", None.__class__])
def test_bad_u_range_is_refused_with_the_rule(u_range):
    with pytest.raises(ValueError, match="u_range=.*lo < hi < 0"):
        check_mirror(mirror("u"), u_range=u_range)


def test_narrow_blow_ups_between_grid_points_are_found():
    plain = u_grid(*SAFETY_U_RANGE)
    texts = ["u_w + 1/(u_w + 2.1234567)^64", "exp(1/(u_w + 3.0123457))",
             "u_w + 1/(u_w^2 + 4.2469134*u_w + 4.50906835)^40"]  # poles off the grid's round numbers
    for text in texts:
        expr = parse_formula(text, ["u_w"])
        fn = compile_expr(expr, ["u_w"])
        x = plain.clone().requires_grad_(True)
        values = fn(x)
        (grad,) = torch.autograd.grad(values.sum(), x)
        assert torch.isfinite(values).all() and torch.isfinite(grad).all(), text  # the grid alone misses it
        result = check_imitation(expr)
        assert not result and "non-finite" in result.reason, text
    assert check_imitation(parse_formula("1/(u_w - 1)", ["u_w"]))  # the pole lies outside u_w < 0
    result = check_imitation(parse_formula("1/(u_w + 2)", ["u_w"]))  # a pole on a round number
    assert not result and "first at u_w = -2" in result.reason
    result = check_link(parse_formula("softplus(-z) + sqrt(sign(z)^4 - t)", ["z", "t"]), uses_t=True)
    assert not result and "first at z = 0" in result.reason


def test_checks_refuse_text_outside_the_grammar_and_never_raise_for_expressions():
    with pytest.raises(FormulaError):
        check_mirror("__import__('os')")
    result = check_mirror(SYMBOLS["u"] * sp.Float(1e9))
    assert not result and "[-1e+06, 1e+06]" in result.reason
    result = check_imitation(sp.exp(sp.exp(sp.exp(100))) * SYMBOLS["u_w"])
    assert not result and "float64's range" in result.reason


@pytest.mark.parametrize("text, reason", [
    ("exp(-50*u)", "non-finite values on u in [-10000, -1e-08]"),
    ("-u", "not strictly increasing"),
    ("u^2", "not strictly increasing"),
    ("3", "constant"),
    ("log(u)", "non-finite"),
    ("sin(u)", "does not compile"),
])
def test_invalid_mirror_maps_fail_with_reason(text, reason):
    expr = sp.sin(SYMBOLS["u"]) if text == "sin(u)" else mirror(text)
    result = check_mirror(expr)
    assert not result and reason in result.reason


def test_temporal_mirror_is_checked_for_every_progress():
    assert check_mirror(mirror("u * (1 + t)", t=True), uses_t=True)
    result = check_mirror(mirror("u * (0.5 - t)", t=True), uses_t=True)
    assert not result and "increasing" in result.reason


def test_link_checks():
    z = ["z"]
    assert check_link(parse_formula("softplus(-z)", z))
    assert check_link(parse_formula("relu(1 - z)", z))
    result = check_link(parse_formula("softplus(z)", z))
    assert not result and "not decreasing in z anywhere on [-1, 1]" in result.reason
    assert "non-finite" in check_link(parse_formula("exp(-z*100)", z)).reason
    assert check_imitation(parse_formula("-u_w", ["u_w"]))
    result = check_imitation(parse_formula("log(u_w)", ["u_w"]))
    assert not result and "non-finite values on u_w in [-10000, -1e-08] (the safety range)" in result.reason


U = SYMBOLS["u"]


@pytest.mark.parametrize("text, back", [
    ("u", U),
    ("u - log(1 - exp(u))", mirror("u - log(1 - exp(u))")),
    ("softplus(u) * 0.5 + u^2", mirror("softplus(u) * 0.5 + u^2")),
    ("u/(1 - u)", U * pdiv(1, 1 - U)),              # division becomes the protected primitive
    ("exp(u) + log(-u)", expc(U) + plog(-U)),       # so do exp and log
    ("u^3", U * U * U),
])
def test_pset_round_trip_of_known_maps_and_pickling(text, back):
    pset = make_pset("mirror")
    expr = mirror(text)
    tree = sympy_to_tree(expr, pset)
    assert tree_to_sympy(tree) == back
    assert pickle.loads(pickle.dumps(tree)) == tree
    assert sympy_to_tree(text, pset) == sympy_to_tree(parse_formula(text, ["u"]), pset)  # text: our grammar
    # the protected forms agree with the originals on a valid candidate's domain
    u = -torch.logspace(-3, 1, 50, dtype=torch.float64)
    torch.testing.assert_close(compile_expr(back, ["u"])(u), compile_expr(expr, ["u"])(u))


def test_random_trees_pickle_with_their_constants():
    pset = make_pset("link", uses_t=True)
    random.seed(3)
    trees = [gp.PrimitiveTree(gp.genHalfAndHalf(pset, 1, 4)) for _ in range(50)]
    restored = pickle.loads(pickle.dumps(trees))
    assert [tree_to_sympy(t) for t in restored] == [tree_to_sympy(t) for t in trees]


def test_bad_pset_arguments():
    with pytest.raises(ValueError, match="unknown slot.*did you mean 'mirror'"):
        make_pset("miror")
    with pytest.raises(ValueError, match="empty"):
        make_pset("mirror", primitives=[])
    with pytest.raises(ValueError, match="did you mean 'softplus'"):
        make_pset("mirror", primitives=["softpluss"])
    with pytest.raises(FormulaError, match="lacks 'log1mexp'"):
        sympy_to_tree(mirror("u - log(1 - exp(u))"), make_pset("mirror", primitives=["add", "mul"]))
    with pytest.raises(FormulaError, match="exponent"):
        sympy_to_tree(U**100, make_pset("mirror"))
    with pytest.raises(FormulaError, match="2000 nodes"):
        sympy_to_tree((((U + 1) ** 40 + 1) ** 40 + 1) ** 40, make_pset("mirror"))
