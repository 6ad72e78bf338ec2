import json

import pytest
import sympy as sp

from symloss.expr import SYMBOLS, FormulaError, expr_from_json, expr_to_json, parse_formula, to_formula

U, Z = SYMBOLS["u"], SYMBOLS["z"]


@pytest.mark.parametrize("text", [
    "u - log(1 - exp(u))", "softplus(-z) * 0.25 + z^2", "-u^2", "pdiv(u, 3) + sqrtabs(u) - tanh(u)",
    "max(u, -1) + min(u, 2) + abs(u)", "1.5e-3 * u + .5", "log1mexp(u) + logsigmoid(u) + sigmoid(u)",
    "2 ** 3 ** 2 * u",
])
def test_round_trip(text):
    expr = parse_formula(text, ["u", "z"])
    assert parse_formula(to_formula(expr), ["u", "z"]) == expr


def test_precedence_and_associativity():
    assert parse_formula("-u^2", ["u"]) == -(U**2)
    assert parse_formula("2^3^2", ["u"]) == 512
    assert parse_formula("u - z - 1", ["u", "z"]) == U - Z - 1
    assert parse_formula("u / 2 / 2", ["u"]) == U / 4


def test_float_constants_round_trip_exactly():
    expr = parse_formula("0.1234567890123 * u", ["u"])
    back = parse_formula(to_formula(expr), ["u"])
    assert float(back.coeff(U)) == float(expr.coeff(U))


@pytest.mark.parametrize("text, fragment", [
    ("softplu(u)", "did you mean 'softplus'"),
    ("x + u", "unknown name 'x'"),
    ("u +", "expected more input"),
    ("log(u, u)", "takes 1 argument"),
    ("u $ 2", "unexpected character"),
    ("", "empty formula"),
    ("u ^ 1000", "exponent"),
    ("((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((u))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))", "nested"),
])
def test_bad_formulas_name_the_field(text, fragment):
    with pytest.raises(FormulaError) as info:
        parse_formula(text, ["u"], field="mirror")
    assert str(info.value).startswith("mirror:")
    assert fragment in str(info.value)


@pytest.mark.parametrize("payload", [
    "__import__('os').system('touch PWNED')",
    "__import__(\"os\").system(\"touch PWNED\")",
    "exp.__class__",
    "open(PWNED)",
    "lambda: u",
])
def test_injection_payloads_are_rejected_and_nothing_runs(payload, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FormulaError):
        parse_formula(payload, ["u"])
    record = json.dumps({"formula": payload, "variables": ["u"]})
    with pytest.raises(FormulaError):
        expr_from_json(record)
    assert not (tmp_path / "PWNED").exists()


def test_json_round_trip_and_bad_variables():
    expr = parse_formula("u - log1mexp(u)", ["u"])
    record = expr_to_json(expr, ["u"])
    assert json.loads(json.dumps(record))["latex"] == record["latex"]
    back, variables = expr_from_json(json.dumps(record))
    assert back == expr and variables == ("u",)
    with pytest.raises(FormulaError, match="variables"):
        expr_from_json({"formula": "u", "variables": ["os"]})
    with pytest.raises(FormulaError, match="not valid JSON"):
        expr_from_json("{not json")


def test_sympy_objects_never_parsed_from_text():
    # the grammar produces the same SymPy objects as direct construction
    assert parse_formula("exp(u)", ["u"]) == sp.exp(U)
