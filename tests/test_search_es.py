"""The paper's ES baseline over monotone parametric maps, and symbolic distillation."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from symloss.expr import check_mirror, compile_expr, parse_formula, plog, stabilise, to_formula
from symloss.search import MirrorTargetFitness, SearchConfig
from symloss.search._distill import (
    RangeTargetFitness,
    distill_mirror,
    formula_from_external,
    range_grid,
    unit_map,
)
from symloss.search._es import (
    ESConfig,
    MirrorES,
    basis,
    centred_ranks,
    init_state,
    initial_theta,
    mirror_expr,
    state_from_json,
    state_to_json,
)
from symloss.search._es_search import distill_best, es_generation, es_initial_state, es_loss
from symloss.search._evolve import base_loss


@pytest.mark.parametrize("u_range", [None, (-340.0, -70.0), (-5.0, -0.01)])
def test_parametric_maps_are_always_valid_mirror_maps(u_range):
    rng = np.random.default_rng(0)
    for _ in range(10):
        theta = rng.normal(0, 3, size=len(basis(u_range)))
        assert check_mirror(mirror_expr(theta, u_range), u_range=u_range), theta


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
    (deap,) = distill_mirror(target, engine="deap", population=32, generations=6, seed=1)
    assert deap.max_error < 1e-3
    pytest.importorskip("pyoperon")
    (operon,) = distill_mirror(target, engine="operon")
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
    ({"population": 1}, r"population=1: must be an integer >= 2 \(one antithetic pair\)"),
    ({"generations": 0}, r"generations=0: must be an integer >= 1"),
    ({"sigma": float("inf")}, r"sigma=inf: must be a finite number > 0"),
    ({"lr": 0.0}, r"lr=0.0: must be a finite number > 0"),
    ({"init": "orp"}, r"init='orp': must be one of \['dpo', 'orpo'\]; did you mean 'orpo'\?"),
    ({"u_range": (-70.0, -340.0)}, r"u_range=\(-70.0, -340.0\): must be finite with lo < hi < 0"),
    ({"base": "dp0"}, r"base='dp0': must be one of .*did you mean 'dpo'\?"),
])
def test_bad_es_config_names_the_accepted_range(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ESConfig(**kwargs)


# -- the data-range basis, es_generation, its state and distill_best (issue 14 item 5) ------------------------

DATA = (-340.0, -70.0)
"""About the summed log-probs of Hopper noisy's training pairs."""


@pytest.mark.parametrize("u_range", [DATA, (-5.0, -0.01), None])
def test_basis_is_increasing_and_alive_in_float32_on_the_data_range(u_range):
    lo, hi = u_range or (-10.0, -0.01)
    u = torch.linspace(lo, hi, 200, dtype=torch.float32, requires_grad=True)
    for phi in basis(u_range):
        values = compile_expr(phi, ["u"])(u)
        (slope,) = torch.autograd.grad(values.sum(), u)
        assert values.dtype == torch.float32 and torch.isfinite(values).all(), phi
        assert bool((values.detach().diff() > 0).all()), f"{phi} is flat in float32 somewhere on {u_range}"
        assert float(slope.min()) > 1e-5 and float(values[-1].detach() - values[0].detach()) > 0.1, phi  # no underflow, no constant


def test_basis_depends_on_the_range_and_orpo_joins_near_zero():
    far, near = basis(DATA), basis((-5.0, -0.01))
    assert len(far) == 9 and len(near) == 10  # ORPO's -log(1 - e^u) is 0 in float32 on the data range
    assert far[2] != near[2]
    with pytest.raises(ValueError, match=r"init='orpo': .* use init='dpo'"):
        initial_theta("orpo", DATA)
    with pytest.raises(ValueError, match=r"theta has 3 entries: must have 9"):
        mirror_expr(np.zeros(3), DATA)


def _config(**kw):
    return SearchConfig(**{"population": 8, "seed": 3, "confirm": 0, "baselines": "none", "rungs": (), **kw})


def _target(text="u - 200*log(-u)"):
    return RangeTargetFitness(stabilise(parse_formula(text, ["u"])), DATA)


def test_es_generation_improves_on_a_synthetic_fitness():
    config, fitness = _config(), _target()
    state = es_initial_state(config, DATA)
    start = fitness([es_loss(state.theta, config, DATA)])[0].mean
    for _ in range(6):
        state, metrics, evaluated = es_generation(state, config, fitness)
        assert len(evaluated) == 8 and metrics["new"] == 8 and metrics["failed"] == 0
    assert state.step == 6 and len(state.history) == 6
    assert state.best_score > start + 0.02  # DPO's map is 0.066 from the target (normalised, on DATA)
    loss, result = evaluated[0]
    base = base_loss(config)
    assert loss.name == "es" and loss.link == base.link and loss.beta == base.beta and result.ok


def test_odd_population_scores_the_centre_and_a_failed_batch_does_not_stop_the_run():
    config = _config(population=5)
    state = es_initial_state(config, DATA)

    def crash(losses):
        raise RuntimeError("simulator down")

    after, metrics, evaluated = es_generation(state, config, crash)
    assert len(evaluated) == 5 and metrics["failed"] == 5 and after.step == 1
    assert "simulator down" in evaluated[0][1].reason
    assert evaluated[4][0].mirror == mirror_expr(state.theta, DATA)  # the centre, last
    np.testing.assert_array_equal(after.best_theta, state.best_theta)  # nothing scored: best unchanged


def test_es_searches_the_mirror_slot_only():
    with pytest.raises(ValueError, match=r"method='es' with slots=\('link',\), temporal=False: .*slots=\('mirror',\)"):
        es_initial_state(_config(slots=("link",)), DATA)


def test_state_json_round_trip_and_resume_give_identical_next_thetas():
    config, fitness = _config(), _target()
    state = es_initial_state(config, DATA)
    state, _, _ = es_generation(state, config, fitness)
    stored = json.loads(json.dumps(state_to_json(state)))
    resumed = state_from_json(stored)
    assert state_to_json(resumed) == state_to_json(state)
    seen = []

    def record(losses):
        seen.append([to_formula(loss.mirror) for loss in losses])
        return fitness(losses)

    a, _, _ = es_generation(state, config, record)
    b, _, _ = es_generation(resumed, config, record)
    assert seen[0] == seen[1]
    np.testing.assert_array_equal(a.theta, b.theta)
    np.testing.assert_array_equal(a.best_theta, b.best_theta)
    assert state_from_json(json.loads(json.dumps(state_to_json(init_state(DATA))))).best_score == -math.inf


def _stored():
    return json.loads(json.dumps(state_to_json(init_state(DATA, seed=1))))


@pytest.mark.parametrize("change, message", [
    ({"format": "other/1"}, r"ES state: format='other/1': must be 'symloss.search.es_state/1'"),
    ({"u_range": [-70, -340]}, r"ES state: u_range=\[-70, -340\]: must be finite with lo < hi < 0"),
    ({"u_range": None}, r"ES state: u_range=None"),
    ({"theta": [0.0] * 3}, r"ES state: theta=\[0.0, 0.0, 0.0\]: must be a list of 9 finite numbers"),
    ({"adam_v": ["__import__('os')"] * 9}, r"ES state: adam_v=.*must be a list of 9 finite numbers"),
    ({"step": -1}, r"ES state: step=-1: must be an integer >= 0"),
    ({"step": True}, r"ES state: step=True: must be an integer >= 0"),
    ({"sigma": 0}, r"ES state: sigma=0: must be a finite number > 0"),
    ({"best_score": "inf"}, r"ES state: best_score='inf': must be a finite number"),
    ({"rng_state": {"bit_generator": "MT19937"}}, r"ES state: rng_state=.*must be a numpy PCG64 state"),
    ({"history": [{"best": "x"}]}, r"ES state: history=.*must be a list of \{metric name: number\}"),
])
def test_bad_es_state_is_refused_with_the_field_named(change, message):
    with pytest.raises(ValueError, match=message):
        state_from_json({**_stored(), **change})
    with pytest.raises(ValueError, match=r"ES state: format=\[\]"):
        state_from_json([])


def _theta_mostly_log(u_range=DATA):
    """Weight 1 on u, 1.3 on -g log(-u) (g = 154.3 on DATA), ~0 elsewhere: m ~ u - 200 log(-u)."""
    theta = np.full(len(basis(u_range)), -8.0)
    theta[0], theta[1] = math.log(math.expm1(1.0)), math.log(math.expm1(1.3))
    return theta


def test_distill_best_recovers_a_log_map_with_its_scale():
    state = dataclasses.replace(init_state(DATA), best_theta=_theta_mostly_log())
    forms = distill_best(state, seed=0, budget=0)
    best = forms[0]
    assert best.engine == "basis" and best.max_error < 1e-3, forms
    assert best.expr.has(plog) and len(forms) >= 2
    target = mirror_expr(state.best_theta, DATA)
    grid = torch.tensor(DATA, dtype=torch.float64)
    rise = [float(compile_expr(e, ["u"])(grid).diff()[0]) for e in (target, best.expr)]
    assert rise[1] == pytest.approx(rise[0], rel=1e-3)  # the scale (effective beta) is kept
    errors = [f.max_error for f in forms]
    for i, a in enumerate(forms):  # distinct on the range
        for b in forms[i + 1:]:
            grid = range_grid(DATA)
            assert float((unit_map(a.expr, grid) - unit_map(b.expr, grid)).abs().max()) > 1e-3, (a, b)
    assert all(e < 0.05 for e in errors)


def test_distill_best_with_the_deap_engine_on_the_data_range():
    state = dataclasses.replace(init_state(DATA), best_theta=_theta_mostly_log())
    forms = distill_best(state, seed=0, budget=96, forms=3)
    assert 1 <= len(forms) <= 3 and forms[0].max_error < 1e-3
    assert {f.engine for f in forms} <= {"basis", "deap"}
    for form in forms:
        assert check_mirror(form.expr, u_range=DATA), form
    with pytest.raises(ValueError, match=r"budget=-1: must be an integer >= 0"):
        distill_best(state, budget=-1)
