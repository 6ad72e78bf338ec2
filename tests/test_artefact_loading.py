"""Loading losses from files and dicts: code-injection payloads refused, nonsense refused with one named line,
suspicious slots warned about, missing sources and misspelt zoo names explained, committed artefacts read."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

import symloss as sl
from symloss.expr import FormulaError
from symloss.integrations import ArtefactError, load_loss
from symloss.objectives import LOSSES, MirrorLoss
from symloss.validation import ConfigError

ARTEFACTS = sorted((Path(__file__).parent.parent / "paper_repro" / "artefacts").glob("*.json"))


def _payloads(canary: Path) -> list[tuple[str, object, type, str]]:
    touch = f"__import__('os').system('touch {canary}')"
    return [
        ("mirror", touch, FormulaError, r"mirror: unexpected character"),
        ("link", f"lambda z: {touch}", FormulaError, r"link: unexpected character ':'"),
        ("mirror", "().__class__.__bases__[0].__subclasses__()", FormulaError, r"mirror: unexpected"),
        ("link", f'eval("{touch}")', FormulaError, r"link: unexpected character '\"'"),
        ("mirror", "exec(u)", FormulaError, r"mirror: unknown name 'exec'"),
        ("mirror", "u.__class__", FormulaError, r"mirror: unexpected character '\.'"),
        ("w_pref", "__builtins__", FormulaError, r"w_pref: unknown name '__builtins__'"),
        ("mirror", "\uff45\uff58\uff50(u)", FormulaError, r"mirror: unexpected character"),  # fullwidth exp
        ("mirror", "\u0435xp(u)", FormulaError, r"mirror: unexpected character"),  # Cyrillic e
        ("imitation", "u_w; import os", FormulaError, r"imitation: unexpected character ';'"),
        ("mirror", "getattr(u, '__globals__')", FormulaError, r"mirror: unexpected character"),
        ("aggregation", touch, ConfigError, r"aggregation=.*must be one of \['sequence', 'mean', 'token'\]"),
        ("mirror", {"__reduce__": ["os.system", [f"touch {canary}"]]}, FormulaError,
         r"mirror: expected a formula string or a number, got dict"),
        ("__class__", "os.system", ConfigError, r"unknown key\(s\) \['__class__'\]"),
    ]


def test_injection_payloads_run_nothing_and_are_refused_by_name(tmp_path):
    canary = tmp_path / "CANARY"
    payloads = _payloads(canary)
    assert len(payloads) >= 10
    for key, value, error, message in payloads:
        data = {**sl.objectives.dpo().to_dict(), key: value}
        with pytest.raises(error, match=message):
            MirrorLoss.from_dict(data)
        path = tmp_path / "evil.json"
        path.write_text(json.dumps(data))
        loader_message = r"key '__class__' is not a loss field" if key == "__class__" else message
        with pytest.raises(ArtefactError, match=r"evil.json: .*" + loader_message):
            load_loss(path)
        with pytest.raises(ArtefactError):
            load_loss({"loss": data, "fitness": 1.0})
    assert not canary.exists()


@pytest.mark.parametrize("text, message", [
    ("{not json", r"not valid JSON"),
    ("[1, 2]", r"holds a JSON list, expected an object"),
    ('{"fitness": 3}', r"not a symloss loss artefact \(keys \['fitness'\]\)"),
    ('{"mirror": "u", "link": "softplus(-z)", "beta": -1}', r"beta=-1: must be a finite number > 0"),
    ('{"mirror": "foo(u)"}', r"unknown name 'foo'"),
    ('{"mirror": "u", "beta": Infinity}', r"best.json: invalid loss: beta=inf: must be a finite number > 0"),
    ('{"mirror": "u", "beta": NaN}', r"beta=nan: must be a finite number > 0"),
    ('{"mirror": "u", "reference_free": "no"}', r"reference_free='no': must be true or false \(a JSON boolean"),
    ('{"mirror": "u", "w_pref": NaN}', r"w_pref=nan: must be a finite number or a formula in \['t'\]"),
    ('{"mirror": "u", "w_imit": -Infinity}', r"w_imit=-inf: must be a finite number"),
    ('{"mirror": "u * 1e999"}', r"mirror: the number 1e999 is outside the accepted range: numbers in a formula must lie in \[-1e\+06, 1e\+06\]"),
    ('{"mirror": "log(0)+u"}', r"mirror: the constant log\(0\) is not a finite real number"),
    ('{"mirror": "u", "temperature": 0, "reduction": "logmeanexp"}', r"temperature=0: must be a finite number > 0"),
    ('{"mirror": "u", "reduction": "max"}', r"reduction='max': must be one of \['mean', 'logmeanexp'\]"),
    ('{"mirror": "u", "name": 7}', r"name=7: must be a string"),
])
def test_invalid_artefacts_and_nonsense_in_a_best_json_are_refused_at_load_time(tmp_path, text, message):
    path = tmp_path / "best.json"
    path.write_text(text)
    with pytest.raises(ArtefactError, match=message) as info:
        load_loss(tmp_path)  # a run directory: its best.json
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("data, slot, reason", [
    ({"mirror": "-u", "link": "softplus(-z)"}, "mirror", r"not strictly increasing in u"),
    ({"mirror": "u", "link": "softplus(z)"}, "link", r"not decreasing in z anywhere on \[-1, 1\]"),
])
def test_suspicious_slots_from_a_file_load_with_a_warning(tmp_path, data, slot, reason):
    path = tmp_path / "loss.json"
    path.write_text(json.dumps(data))
    with pytest.warns(UserWarning, match=rf"loss.json: {slot}='.*' fails symloss's validity check \({reason}"):
        loss = load_loss(path)
    assert loss == MirrorLoss.from_dict(data)  # loaded anyway (Python may build it on purpose, silently)


def test_zoo_losses_and_their_exports_load_without_warnings(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name, make in LOSSES.items():
            assert load_loss(name) == make()
            path = tmp_path / f"{name}.json"
            path.write_text(json.dumps(make().to_dict()))
            assert load_loss(path) == make()


def test_misspelt_zoo_name_and_missing_file():
    with pytest.raises(ArtefactError, match=r"loss='dpoo': not a zoo loss .*; did you mean the zoo loss 'dpo'\?"):
        load_loss("dpoo")
    with pytest.raises(FileNotFoundError):  # also a FileNotFoundError, for callers that catch that
        load_loss("holder-dpo")
    with pytest.raises(ArtefactError, match=r"^missing.json: no such file or directory; pass a loss JSON") as info:
        load_loss("missing.json")
    assert "\n" not in str(info.value) and "did you mean" not in str(info.value)


@pytest.mark.parametrize("path", ARTEFACTS, ids=[p.name for p in ARTEFACTS])
def test_committed_artefacts_load(path):
    assert ARTEFACTS, "paper_repro/artefacts holds the search results"
    with warnings.catch_warnings(record=True) as caught:  # the search-1/2 maps are singular at u -> 0:
        warnings.simplefilter("always")                    # the file check may say so, naming the range
        loss = load_loss(path)
    assert all("fails symloss's validity check" in str(w.message) and "on [" in str(w.message) for w in caught)
    raw = json.loads(path.read_text())
    assert raw.get("format", "symloss.mirror_loss/1") == "symloss.mirror_loss/1"
    assert MirrorLoss.from_dict(loss.to_dict()) == loss


def test_a_best_json_is_checked_on_the_u_range_its_search_recorded(tmp_path):
    import json
    import warnings

    from symloss.integrations import load_loss

    # increasing on TLA's data (u in [-1e3, -1e-4]) but not on the checks' default range up to -1e-8
    data = {"mirror": "4.907*u + pdiv(-0.173, u)", "link": "softplus(-z)", "beta": 0.1}
    path = tmp_path / "best.json"
    path.write_text(json.dumps(data))
    with pytest.warns(UserWarning, match="fails symloss's validity check"):
        load_loss(str(path))
    path.write_text(json.dumps({**data, "u_ranges": {"mirror": [-1240.0, -0.0001]}}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_loss(str(path)).beta == 0.1
