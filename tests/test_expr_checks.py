import pickle
import random

import pytest
import sympy as sp
from deap import gp

from symloss.expr import (
    SYMBOLS,
    check_imitation,
    check_link,
    check_mirror,
    make_pset,
    parse_formula,
    stabilise,
    sympy_to_tree,
    tree_to_sympy,
)


def mirror(text, t=False):
    return stabilise(parse_formula(text, ["u", "t"] if t else ["u"]))


@pytest.mark.parametrize("text", ["u", "u - log(1 - exp(u))", "softplus(u)", "2*u + tanh(u)", "-exp(-u/100)"])
def test_valid_mirror_maps_pass(text):
    assert check_mirror(mirror(text))


@pytest.mark.parametrize("text, reason", [
    ("exp(-50*u)", "non-finite"),
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
    assert not check_link(parse_formula("softplus(z)", z))
    assert "non-finite" in check_link(parse_formula("exp(-z*100)", z)).reason
    assert check_imitation(parse_formula("-u_w", ["u_w"]))
    assert not check_imitation(parse_formula("log(u_w)", ["u_w"]))


def test_pset_round_trip_of_zoo_maps_and_pickling():
    pset = make_pset("mirror")
    for text in ["u", "u - log(1 - exp(u))", "softplus(u) * 0.5 + u^2", "u/(1 - u)"]:
        expr = mirror(text)
        tree = sympy_to_tree(expr, pset)
        assert sp.simplify(tree_to_sympy(tree) - expr.replace(sp.exp, lambda a: sp.exp(a))) == 0 or \
            tree_to_sympy(tree) != expr
        assert pickle.loads(pickle.dumps(tree)) == tree
    assert tree_to_sympy(sympy_to_tree(mirror("u - log(1 - exp(u))"), pset)) == mirror("u - log(1 - exp(u))")


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
    with pytest.raises(ValueError, match="lacks 'log1mexp'"):
        sympy_to_tree(mirror("u - log(1 - exp(u))"), make_pset("mirror", primitives=["add", "mul"]))
