"""The paper's ES baseline over monotone parametric maps, and symbolic distillation."""

import numpy as np
import pytest
import torch

from symloss.expr import check_mirror, compile_expr
from symloss.search import MirrorTargetFitness
from symloss.search._distill import distill_mirror, formula_from_external
from symloss.search._es import ESConfig, MirrorES, centred_ranks, initial_theta, mirror_expr


def test_parametric_maps_are_always_valid_mirror_maps():
    rng = np.random.default_rng(0)
    for _ in range(20):
        theta = rng.normal(0, 3, size=13)
        assert check_mirror(mirror_expr(theta)), theta


def test_centred_ranks_handle_ties_and_minus_infinity():
    ranks = centred_ranks(np.array([1.0, -np.inf, 3.0, 1.0]))
    assert ranks.min() == -0.5 and ranks.max() == 0.5
    assert ranks[1] == -0.5 and ranks[2] == 0.5


def test_es_improves_on_a_known_answer_and_is_deterministic():
    fitness = MirrorTargetFitness("u - log(1 - exp(u))")
    config = ESConfig(population=6, generations=3, seed=0, lr=0.3)
    a = MirrorES(config, fitness=fitness).fit()
    b = MirrorES(config, fitness=fitness).fit()
    np.testing.assert_array_equal(a.best_theta_, b.best_theta_)
    start = fitness([a.loss_for(initial_theta("dpo"))])[0].mean
    assert a.best_score_ > start
    assert a.best_.name == "es"


def test_distillation_offline_engines():
    target = "u + tanh(u)"
    deap = distill_mirror(target, engine="deap", population=32, generations=6, seed=1)
    assert deap.max_error < 1e-3
    pytest.importorskip("pyoperon")
    operon = distill_mirror(target, engine="operon")
    assert operon.max_error < 0.05
    fn = compile_expr(operon.expr, ["u"])
    assert torch.isfinite(fn(torch.linspace(-10, -0.01, 50, dtype=torch.float64))).all()


def test_pysr_fails_with_a_clear_message_when_unavailable():
    try:
        import pysr  # noqa: F401
    except Exception:  # noqa: BLE001 - any failure means PySR is unusable here, which is what we test
        with pytest.raises(ImportError, match="engine='pysr'"):
            distill_mirror("u", engine="pysr")
    else:
        pytest.skip("PySR is importable here")


def test_external_formulas_are_parsed_not_evaluated():
    assert str(formula_from_external("(1.5 * X1) + tanh(X1)", {"X1": "u"})) == "1.5*u + tanh(u)"
    with pytest.raises(ValueError):
        formula_from_external("__import__('os').system('ls')", {})
    with pytest.raises(ValueError, match=r"engine='magic': must be one of \['deap', 'operon', 'pysr'\]"):
        distill_mirror("u", engine="magic")


@pytest.mark.parametrize("kwargs, message", [
    ({"population": 5}, r"population=5: must be an even integer >= 2 \(antithetic pairs\); use 6"),
    ({"population": 0}, r"population=0: must be an integer >= 2"),
    ({"generations": 0}, r"generations=0: must be an integer >= 1"),
    ({"sigma": float("inf")}, r"sigma=inf: must be a finite number > 0"),
    ({"lr": 0.0}, r"lr=0.0: must be a finite number > 0"),
    ({"init": "orp"}, r"init='orp': must be one of \['dpo', 'orpo'\]; did you mean 'orpo'\?"),
    ({"base": "dp0"}, r"base='dp0': must be one of .*did you mean 'dpo'\?"),
])
def test_bad_es_config_names_the_accepted_range(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ESConfig(**kwargs)
