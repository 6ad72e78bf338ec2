"""Semantic deduplication: equivalent forms on the data's u range share one signature; labels; flat maps."""

from __future__ import annotations

import copy
import json
import re

import pytest

from symloss.expr import parse_formula, slot_variables
from symloss.search._dedup import (
    POINTS,
    T_GRID,
    Signature,
    equivalent,
    family,
    find_equivalent,
    flat_reason,
    representative,
    signature,
)

HOPPER = {"mirror": (-340.0, -70.0), "imitation": (-340.0, -70.0)}
"""About the u range of Hopper ``noisy`` summed log-probs (the demo's)."""

LOG_FORMS = ("plog(pdiv(-0.839, u))", "plog(pdiv(-0.77, u))", "-plog(u) - softplus(log1mexp(u))",
             "pdiv(u, u) - plog(u) - softplus(u)")
"""All -log(-u) + const on [-340, -70] (the demo's seven-way tie)."""
LINEAR_FORMS = ("u", "u - log1mexp(u)", "u + tanh(u)", "u - (u + 0.241)*softplus(u) - tanh(plog(u))")
"""All u + const on [-340, -70]."""


def mirror_sig(text: str, ranges=HOPPER, temporal: bool = False) -> Signature | None:
    return signature({"mirror": parse_formula(text, slot_variables("mirror", True))}, ranges, temporal=temporal)


@pytest.mark.parametrize("forms", [LOG_FORMS, LINEAR_FORMS], ids=["log", "linear"])
def test_equivalent_forms_on_the_data_range_collapse_to_one_class(forms):
    sigs = {text: mirror_sig(text) for text in forms}
    assert all(s is not None for s in sigs.values())
    first = forms[0]
    for text in forms[1:]:
        assert equivalent(sigs[first], sigs[text]), text
        assert find_equivalent(sigs[text], {first: sigs[first]}) == first


def test_the_two_classes_stay_apart():
    assert not equivalent(mirror_sig(LOG_FORMS[0]), mirror_sig(LINEAR_FORMS[0]))
    known = {text: mirror_sig(text) for text in (*LOG_FORMS[:1], *LINEAR_FORMS[:1])}
    assert find_equivalent(mirror_sig(LOG_FORMS[2]), known) == LOG_FORMS[0]
    assert find_equivalent(mirror_sig(LINEAR_FORMS[3]), known) == LINEAR_FORMS[0]


def test_scale_is_an_effective_beta_so_u_and_2u_differ_but_2u_and_198u_merge():
    u, two, almost, also_two = (mirror_sig(t) for t in ("u", "2*u", "1.98*u", "u*pdiv(u, u) + u"))
    assert not equivalent(u, two)
    assert equivalent(two, almost)
    assert equivalent(two, also_two)
    assert not equivalent(u, two, scale_rtol=0.5)  # 2x is beyond even a loose tolerance
    assert not equivalent(two, almost, scale_rtol=0.001)


@pytest.mark.parametrize("other", ["-pdiv(1, u)", "u + 0.01*u**2", "u + 0.0001*u**2", "u + 0.3*tanh(u + 200)"])
def test_genuinely_different_maps_are_not_merged(other):
    known = {text: mirror_sig(text) for text in (LOG_FORMS[0], LINEAR_FORMS[0])}
    assert find_equivalent(mirror_sig(other), known) is None


def test_a_slope_difference_between_grid_values_is_not_merged():
    # a smooth step of height 1e-3 * std(u) at -200: values within 5e-4 of u's shape, slopes 7e-3 apart
    step = mirror_sig("u + 0.04*tanh((u + 200)/5)")
    assert not equivalent(step, mirror_sig("u"))
    assert equivalent(step, mirror_sig("u"), shape_tol=10.0)  # only the slope tolerance keeps them apart


def test_the_same_form_on_another_range_is_not_compared():
    other = {"mirror": (-10.0, -0.01)}
    assert not equivalent(mirror_sig("u"), mirror_sig("u", other))
    # and the range decides: ORPO's log-odds map is linear on [-340, -70] but not on [-10, -0.01]
    assert equivalent(mirror_sig("u"), mirror_sig("u - log1mexp(u)"))
    assert not equivalent(mirror_sig("u", other), mirror_sig("u - log1mexp(u)", other))


def test_non_finite_or_constant_slots_give_no_signature():
    assert mirror_sig("0*u + 3") is None
    assert mirror_sig("softplus(u)") is None  # < 1e-30 on [-340, -70]: constant to float64 precision
    assert signature({}, HOPPER, temporal=False) is None


def test_a_missing_or_bad_u_range_is_named():
    with pytest.raises(ValueError, match=r"no u range for slot 'imitation'.*ranges="):
        signature({"imitation": "-u_w"}, {"mirror": (-340.0, -70.0)}, temporal=False)
    with pytest.raises(ValueError, match=r"ranges\['mirror'\]=\(-70.0, -340.0\): expected finite low < high"):
        signature({"mirror": "u"}, {"mirror": (-70.0, -340.0)}, temporal=False)


def test_link_imitation_and_temporal_slots_have_signatures():
    exprs = {"mirror": "u*(1 + t)", "link": "softplus(-z)", "imitation": "-u_w"}
    sig = signature(exprs, HOPPER, temporal=True)
    assert sig is not None and set(sig.slots) == set(exprs)
    for slot in sig.slots.values():
        assert slot.t == T_GRID and slot.shape.shape == (len(T_GRID) * POINTS,)
    assert sig.slots["link"].range == (-10.0, 10.0)
    # an additive c(t) never reaches the gradient: removed per t; a t-dependent scale is kept
    assert equivalent(sig, signature({**exprs, "mirror": "u*(1 + t) + 5*t"}, HOPPER, temporal=True))
    assert not equivalent(sig, signature({**exprs, "mirror": "u*(1 + 2*t)"}, HOPPER, temporal=True))
    assert not equivalent(sig, signature({**exprs, "link": "relu(1 - z)"}, HOPPER, temporal=True))
    assert not equivalent(sig, signature({**exprs, "imitation": "2*u_w"}, HOPPER, temporal=True))
    assert not equivalent(sig, signature({"mirror": exprs["mirror"]}, HOPPER, temporal=True))  # other slots


def test_json_round_trip_keeps_equivalence():
    sig = signature({"mirror": "u - log1mexp(u)", "link": "softplus(-z)"}, HOPPER, temporal=True)
    back = Signature.from_json(json.loads(json.dumps(sig.to_json())))
    assert equivalent(sig, back) and equivalent(back, mirror_sig("u", temporal=True)) is False
    assert back.to_json() == sig.to_json()


def _corrupt(path: tuple, value):
    data = mirror_sig("u").to_json()
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


@pytest.mark.parametrize(("path", "value", "message"), [
    (("format",), "other/1", r"expected an object with format 'symloss.signature/1'"),
    (("slots",), {}, r"signature.slots=\{\}: expected a non-empty object"),
    (("slots", "mirror", "shape"), [1.0, 2.0], rf"signature.slots.mirror.shape=.*expected {POINTS} finite"),
    (("slots", "mirror", "slope"), [float("nan")] * POINTS, r"slots.mirror.slope=.*finite numbers"),
    (("slots", "mirror", "shape"), ["1"] * POINTS, r"slots.mirror.shape=.*finite numbers"),
    (("slots", "mirror", "scale"), -1.0, r"slots.mirror.scale=-1.0: expected a finite number > 0"),
    (("slots", "mirror", "scale"), True, r"slots.mirror.scale=True"),
    (("slots", "mirror", "range"), [-70.0, -340.0], r"slots.mirror.range=\[-70.0, -340.0\]: expected low < high"),
    (("slots", "mirror", "t"), [2.0], r"slots.mirror.t=\[2.0\]: progress values must lie in \[0, 1\]"),
])
def test_bad_json_is_refused_with_the_field_named(path, value, message):
    with pytest.raises(ValueError, match=message):
        Signature.from_json(_corrupt(path, value))


def test_bad_json_structure_is_refused():
    data = mirror_sig("u").to_json()
    with pytest.raises(ValueError, match=r"unknown slot 'mirorr'"):
        Signature.from_json({**data, "slots": {"mirorr": data["slots"]["mirror"]}})
    broken = copy.deepcopy(data)
    del broken["slots"]["mirror"]["scale"]
    with pytest.raises(ValueError, match=r"expected an object with keys range, t, shape, slope, scale"):
        Signature.from_json(broken)
    with pytest.raises(ValueError, match=r"format"):
        Signature.from_json("u")  # text is data: refused, never evaluated


# -- family labels -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "label"), [
    ("2*u", "DPO, effective beta 0.2"),
    ("u*pdiv(u, u) + u", "DPO, effective beta 0.2"),
    ("1.98*u", "DPO, effective beta 0.198"),
    ("u - log1mexp(u)", "DPO, effective beta 0.1"),  # ORPO's map is linear on u <= -70
    ("plog(pdiv(-0.839, u))", ""),
])
def test_family_names_dpo_with_its_effective_beta(text, label):
    assert family({"mirror": text}, HOPPER, beta=0.1, base="dpo") == label


def test_family_recognises_the_log_odds_map_where_it_is_not_linear():
    short = {"mirror": (-3.0, -0.05)}
    assert family({"mirror": "u - log1mexp(u)"}, short, beta=1.0, base="dpo") == "ORPO-like mirror, effective beta 1"
    assert family({"mirror": "3*u - 3*log1mexp(u)"}, short, beta=1.0, base="dpo") == \
        "ORPO-like mirror, effective beta 3"


def test_family_needs_the_base_slots_for_the_base_label():
    assert family({"mirror": "2*u", "link": "softplus(-z)"}, HOPPER, beta=0.1, base="dpo") == \
        "DPO, effective beta 0.2"
    assert family({"mirror": "2*u", "link": "relu(1 - z)"}, HOPPER, beta=0.1, base="dpo") == \
        "DPO mirror, effective beta 0.2"
    assert family({"link": "relu(1 - z)"}, HOPPER, beta=0.1, base="hinge") == "hinge, effective beta 0.1"


# -- numerically flat maps -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["u", "-log(-u)", "u - log1mexp(u)", "2*u", "t*u + u"])
def test_maps_that_move_the_loss_pass(text):
    assert flat_reason(text, (-340.0, -70.0), beta=0.1) == ""


@pytest.mark.parametrize(("text", "why"), [
    ("softplus(u)", r"beta\*\(max m - min m\) = 3.98e-32 .*beta\*m'\(u\) is 0 in float32 on 94% of the grid"),
    ("exp(u)", r"is 0 in float32 on 94% of the grid"),
    ("0*u + 1e-9*u", r"beta\*\(max m - min m\) = 2.7e-08 \(needs >= 0.001\)$"),
    ("t*softplus(u)", r"at every t in \[0, 1\]"),
])
def test_flat_maps_are_rejected_with_a_reason(text, why):
    reason = flat_reason(text, (-340.0, -70.0), beta=0.1)
    assert reason.startswith("numerically flat on the data's u range [-340, -70] in float32")
    assert re.search(why, reason), reason


def test_softplus_moves_the_loss_on_a_short_range():
    assert flat_reason("softplus(u)", (-3.0, -0.05), beta=0.1) == ""


def test_representative_is_the_simplest_form():
    assert representative(["b", "a", "c"], {"a": 7, "b": 3, "c": 3}) == "b"
