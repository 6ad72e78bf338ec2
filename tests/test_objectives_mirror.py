"""MirrorLoss as an immutable value: frozen fields, derived to_dict / from_dict / replace / eq / hash, random
round trips, a cache that cannot go stale, what the loss reads, and validation in the constructor."""

from __future__ import annotations

import dataclasses
import math
import pickle
import random

import pytest
import sympy as sp
import torch

import symloss as sl
from symloss.expr import FUNCTIONS, SYMBOLS
from symloss.objectives import AGGREGATIONS, FIELDS, LOSSES, REDUCTIONS, SLOT_SPECS, LogpBatch, MirrorLoss

_MINMAX = {"max", "Max", "min", "Min"}


def random_formula(rng: random.Random, variables, depth: int, parent: str = "") -> str:
    """A random formula of symloss's grammar: variables, integers, floats, pi, E, + - * / ^, unary minus and
    every function of :data:`symloss.expr.FUNCTIONS`. min/max are not nested in min/max: SymPy flattens
    Min(Min(a, b), c) to a 3-argument Min that the grammar's 2-argument min cannot read back (an expr bug,
    reported; not a MirrorLoss one)."""
    if depth == 0 or rng.random() < 0.25:
        kind = rng.random()
        if kind < 0.55:
            return rng.choice(list(variables))
        if kind < 0.75:
            return str(rng.randint(0, 9))
        if kind < 0.95:
            return repr(round(rng.uniform(0.001, 20.0), rng.randint(1, 6)))
        return rng.choice(["pi", "E"])
    op = rng.choice(["+", "-", "*", "/", "^", "call", "call", "neg"])
    if op == "neg":
        return f"-({random_formula(rng, variables, depth - 1)})"
    if op == "^":
        return f"({random_formula(rng, variables, depth - 1)})^{rng.randint(0, 4)}"
    if op == "call":
        names = sorted(set(FUNCTIONS) - _MINMAX) if parent in _MINMAX else sorted(FUNCTIONS)
        name = rng.choice(names)
        args = ", ".join(random_formula(rng, variables, depth - 1, name) for _ in range(FUNCTIONS[name][0]))
        return f"{name}({args})"
    return f"({random_formula(rng, variables, depth - 1)}) {op} ({random_formula(rng, variables, depth - 1)})"


def random_losses(n: int, *, seed: int = 0, pool: int | None = 30):
    """``n`` random valid MirrorLosses: every field random. With ``pool``, each slot's formula is drawn from
    ``pool`` random formulas per slot (SymPy's rewriting of a fresh formula costs milliseconds)."""
    rng = random.Random(seed)

    def fresh(slot):
        return random_formula(rng, SLOT_SPECS[slot], rng.randint(0, 3))

    pools = {slot: [fresh(slot) for _ in range(pool)] for slot in SLOT_SPECS} if pool else None
    losses, attempts = [], 0
    while len(losses) < n and attempts < 3 * n:
        attempts += 1
        kw = {slot: rng.choice(pools[slot]) if pools else fresh(slot) for slot in SLOT_SPECS}
        if rng.random() < 0.3:
            kw["imitation"] = None
        kw.update(beta=round(rng.uniform(0.01, 5), 3), aggregation=rng.choice(AGGREGATIONS),
                  reference_free=rng.random() < 0.5, reduction=rng.choice(REDUCTIONS),
                  temperature=round(rng.uniform(0.1, 3), 2), name=f"random{len(losses)}")
        try:
            losses.append(MirrorLoss(**kw))
        except ValueError:  # e.g. log(0): a non-finite constant, refused by the constructor
            continue
    assert len(losses) == n
    return losses


def _assert_round_trips(losses):
    for loss in losses:
        back = MirrorLoss.from_dict(loss.to_dict())
        assert back == loss, loss.to_dict()
        assert hash(back) == hash(loss)


def test_every_zoo_loss_round_trips_and_hashes_equal():
    _assert_round_trips([make() for make in LOSSES.values()])
    assert len({make() for make in LOSSES.values()}) == len(LOSSES)


def test_1000_random_losses_round_trip():
    _assert_round_trips(random_losses(1000))


@pytest.mark.slow
def test_1000_random_losses_with_fresh_formulas_round_trip():
    _assert_round_trips(random_losses(1000, seed=1, pool=None))


def test_fields_are_frozen_and_replace_makes_a_new_loss():
    loss = sl.objectives.dpo()
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'link'"):
        loss.link = "z"
    with pytest.raises(dataclasses.FrozenInstanceError):
        loss.beta = 1.0
    changed = loss.replace(link="sigmoid(-z)")
    assert loss.to_dict()["link"] == "softplus(-z)" and changed.to_dict()["link"] == "sigmoid(-z)"
    with pytest.raises(ValueError, match=r"replace: unknown field\(s\) \['lnik'\].*did you mean 'link'"):
        loss.replace(lnik="z")


def test_compiled_cache_cannot_go_stale():
    batch = LogpBatch.from_sequence_logps(torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]),
                                          torch.tensor([-2.0]))
    loss = sl.objectives.dpo(beta=1.0)
    before = loss(batch).loss  # compiles the link
    linear = loss.replace(link="-z")
    torch.testing.assert_close(linear(batch).loss, torch.tensor([-2.0]))
    torch.testing.assert_close(loss(batch).loss, before)
    with pytest.raises(AttributeError):
        loss.link = "-z"
    torch.testing.assert_close(loss(batch).loss, before)


def test_pickles_after_use_without_its_compiled_cache():
    loss = sl.objectives.drdpo()
    batch = LogpBatch.from_sequence_logps(torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]),
                                          torch.tensor([-2.0]))
    before = loss(batch).loss
    back = pickle.loads(pickle.dumps(loss))
    assert back == loss and torch.equal(back(batch).loss, before)


def test_fields_declared_once_drive_dict_replace_and_equality():
    assert tuple(f.name for f in dataclasses.fields(MirrorLoss)) == FIELDS
    assert list(sl.objectives.dpo().to_dict()) == ["format", *FIELDS]
    assert set(SLOT_SPECS) == {"mirror", "link", "imitation", "w_pref", "w_imit"}
    a, b = sl.objectives.drdpo(), sl.objectives.drdpo(beta_prime=0.5)
    assert a != b and a.replace(temperature=0.5) == b.replace(name="drdpo")
    assert MirrorLoss.from_dict({"mirror": "u"}) == MirrorLoss()  # missing fields take their defaults


def test_constructor_call_styles():
    positional = MirrorLoss("u - log(1 - exp(u))", "softplus(-z)", "-u_w", beta=1.0, w_pref=0.1,
                            aggregation="mean", reference_free=True, name="orpo")
    keywords = MirrorLoss(mirror="u - log(1 - exp(u))", link="softplus(-z)", imitation="-u_w", beta=1.0,
                          w_pref=0.1, w_imit=1.0, aggregation="mean", reference_free=True, name="orpo")
    assert positional == keywords == sl.objectives.orpo()
    assert MirrorLoss(name=None).name == "mirror"
    with pytest.raises(TypeError):
        MirrorLoss("u", "softplus(-z)", None, 0.1)  # beta and later fields are keyword-only


@pytest.mark.parametrize("kw, message", [
    ({"beta": math.inf}, r"beta=inf: must be a finite number > 0"),
    ({"beta": math.nan}, r"beta=nan: must be a finite number > 0"),
    ({"beta": "0.1"}, r"beta='0.1': must be a finite number > 0"),
    ({"reference_free": "no"}, r"reference_free='no': must be true or false"),
    ({"reference_free": 1}, r"reference_free=1: must be true or false"),
    ({"w_pref": math.nan}, r"w_pref=nan: must be a finite number or a formula in \['t'\]"),
    ({"w_imit": -math.inf}, r"w_imit=-inf: must be a finite number"),
    ({"mirror": "log(0) + u"}, r"mirror: the constant log\(0\) is not a finite real number \(the logarithm of a number <= 0\)"),
    ({"link": "1e999 * z"}, r"link: the number 1e999 is outside the accepted range"),
    ({"mirror": sp.Integer(10) ** 400 * SYMBOLS["u"]}, r"the number 1.0e\+400 is outside the accepted range: numbers in a formula must lie in \[-1e\+06, 1e\+06\]"),
    ({"link": "z + 0*log(0)"}, r"link: the constant log\(0\) is not a finite real number"),
    ({"mirror": "u + sqrt(-1)"}, r"mirror: the constant sqrt\(-1\) is not a finite real number \(a fractional power of a negative number\)"),
    ({"aggregation": "meen"}, r"aggregation='meen': must be one of .*did you mean 'mean'"),
    ({"name": ["dpo"]}, r"name=\['dpo'\]: must be a string"),
    ({"mirror": True}, r"mirror=True: expected a formula"),
])
def test_constructor_rejects_nonsense_with_one_line(kw, message):
    with pytest.raises(ValueError, match=message) as info:
        MirrorLoss(**kw)
    assert "\n" not in str(info.value)


def test_python_may_build_a_loss_its_checks_reject():
    loss = MirrorLoss("-u", "softplus(z)")  # on purpose: allowed in Python, warned about when loaded
    assert not loss.check()["mirror"] and not loss.check()["link"]
    assert all(sl.objectives.dpo().check().values())


def test_every_zoo_loss_passes_its_checks():
    for name, make in LOSSES.items():
        assert all(make().check().values()), name


def test_the_loss_says_what_it_reads():
    assert not sl.objectives.dpo().needs_token_logps and sl.objectives.dpo().aggregation == "sequence"
    assert not sl.objectives.orpo().needs_token_logps and sl.objectives.orpo().aggregation == "mean"
    assert sl.objectives.dpo().replace(aggregation="token").needs_token_logps

    class Reads(MirrorLoss):  # overrides __call__: assumed to read tokens unless it says otherwise
        def __call__(self, batch, *, validate=True):
            return super().__call__(batch, validate=validate)

    class Declares(Reads):
        @property
        def needs_token_logps(self) -> bool:
            return False

    assert Reads().needs_token_logps and not Declares().needs_token_logps


def test_aggregated_batches_give_the_same_loss_when_tokens_are_not_needed():
    gen = torch.Generator().manual_seed(0)
    xs = [-torch.rand(4, 6, generator=gen, dtype=torch.float64) for _ in range(4)]
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[:2, 4:] = False
    for loss in (sl.objectives.dpo(), sl.objectives.orpo(), sl.objectives.ropo(), sl.objectives.drdpo()):
        assert not loss.needs_token_logps
        full = loss(LogpBatch(xs[0], xs[1], mask, mask, xs[2], xs[3])).loss
        how = loss.aggregation
        sums = [sl.objectives.aggregate(x, mask, how) for x in xs]
        short = loss(LogpBatch.from_sequence_logps(*sums)).loss
        torch.testing.assert_close(short, full)


def test_to_python_is_one_module_that_runs_and_matches_the_loss(tmp_path):
    import importlib.util

    import torch

    from symloss import MirrorLoss

    loss = MirrorLoss("expc(0.036*u) + softplus(u)", link="softplus(-z)", imitation="-u_w", name="x")
    source = loss.to_python()
    assert source.count("import torch\n") == 1 and source.count("def softplus(") == 1
    path = tmp_path / "generated.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("generated", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # the user's own use of an exported file
    u = torch.linspace(-5.0, -0.1, 7, dtype=torch.float64)
    t = torch.tensor(0.0, dtype=torch.float64)
    assert torch.allclose(module.mirror(u, t), loss.fn("mirror")(u, t))
    assert torch.allclose(module.link(u, t), loss.fn("link")(u, t))
