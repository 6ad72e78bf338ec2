"""Code-injection payloads through a run directory and the caches: none runs, each is refused or rebuilt.

Ten payloads (text that would run code if evaluated) are put into a tampered checkpoint.json, config.json,
dataset cache and SFT-reference cache. Each must be refused with a named error (run directory) or
detected and rebuilt with a warning (caches); a canary file shows that nothing ran.
"""

from __future__ import annotations

import builtins
import io
import json
import pickle
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from symloss import bench
from symloss.bench import _dataset, load_reference
from symloss.search import CheckpointError, LossSearch, MirrorTargetFitness, RunDirError

CANARY = "CANARY"  # replaced by each test's canary path

PAYLOADS = [
    "__import__('os').system('touch CANARY')",
    "lambda: __import__('os').system('touch CANARY')",
    "().__class__.__bases__[0].__subclasses__()",
    "eval(\"open('CANARY', 'w')\")",
    "exec(\"open('CANARY', 'w')\")",
    "f\"{__import__('os').system('touch CANARY')}\"",
    "\uff45\uff56\uff41\uff4c(\"open('CANARY', 'w')\")",  # fullwidth 'eval': NFKC-normalised to eval by Python
    "getattr(__builtins__, 'exec')(\"open('CANARY', 'w')\")",
    "u + [open('CANARY', 'w') for _ in (1,)][0] if True else u",
    "u + " * 25_000 + "__import__('os').system('touch CANARY')",  # very long text
]


def _payloads(canary: Path) -> list[str]:
    return [p.replace(CANARY, str(canary)) for p in PAYLOADS]


def test_each_payload_would_run_code_if_it_were_evaluated(tmp_path):
    """The payloads are real: plain ``eval`` of the short ones creates the canary."""
    for i, payload in enumerate(PAYLOADS[:9]):
        canary = tmp_path / f"ran{i}"
        try:
            value = eval(payload.replace(CANARY, str(canary)), {"u": 0})  # noqa: S307 - demonstrating the danger
            if callable(value):
                value()
        except Exception:  # noqa: BLE001, S110 - the subclass walk and the f-string need no success
            pass
    assert sum((tmp_path / f"ran{i}").exists() for i in range(9)) >= 7


# -- the run directory ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("payload-run") / "run"
    LossSearch(population=6, generations=1, seed=0, progress=False, fitness=MirrorTargetFitness("softplus(u)"),
               run_dir=str(run_dir)).fit()
    return run_dir


class NeverCalled:
    def __call__(self, losses):
        pytest.fail("a tampered run directory reached training")


def _copy(finished_run: Path, tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    return run_dir


def _first_key(data):
    return next(iter(data["cache"]))


CHECKPOINT_PLACES = {
    "tree": lambda data, p: data["population"][0]["trees"].__setitem__("mirror", p),
    "formula": lambda data, p: data["cache"][_first_key(data)]["formulas"].__setitem__("mirror", p),
    "cache key": lambda data, p: data["cache"].__setitem__(p, data["cache"].pop(_first_key(data))),
    "generation": lambda data, p: data.__setitem__("generation", p),
    "rng_state": lambda data, p: data["rng_state"].__setitem__(1, p),
    "history": lambda data, p: data["history"][0].__setitem__("best", p),
    "u_ranges": lambda data, p: data.__setitem__("u_ranges", {"mirror": [p, -1.0]}),
    "format": lambda data, p: data.__setitem__("format", p),
}


@pytest.mark.parametrize("place", sorted(CHECKPOINT_PLACES))
@pytest.mark.parametrize("index", range(len(PAYLOADS)))
def test_a_tampered_checkpoint_is_refused_and_nothing_runs(finished_run, tmp_path, place, index):
    run_dir = _copy(finished_run, tmp_path)
    canary = tmp_path / "ran"
    data = json.loads((run_dir / "checkpoint.json").read_text())
    CHECKPOINT_PLACES[place](data, _payloads(canary)[index])
    (run_dir / "checkpoint.json").write_text(json.dumps(data))
    before = (run_dir / "checkpoint.json").read_text()
    with pytest.raises(CheckpointError, match="checkpoint.json: .*restore the file from a copy") as info:
        LossSearch.resume(run_dir, fitness=NeverCalled(), progress=False, generations=3).fit()
    assert not canary.exists()
    assert "\n" not in str(info.value) and len(str(info.value)) < 1000
    assert (run_dir / "checkpoint.json").read_text() == before  # nothing was overwritten


CONFIG_FIELDS = ["env", "dataset", "base", "device", "selection", "executor", "slots", "primitives", "population",
                 "unknown field", "train.device", "train.fitness", "train.steps", "train.unknown field"]
"""Fields of config.json; ``train.x``: field x of the stored training protocol."""


@pytest.mark.parametrize("field", CONFIG_FIELDS)
@pytest.mark.parametrize("index", range(len(PAYLOADS)))
def test_a_tampered_config_is_refused_and_nothing_runs(finished_run, tmp_path, monkeypatch, field, index):
    monkeypatch.setattr(bench, "build_dataset", lambda *a, **k: pytest.fail("a tampered config reached the data"))
    run_dir = _copy(finished_run, tmp_path)
    canary = tmp_path / "ran"
    config = json.loads((run_dir / "config.json").read_text())
    payload = _payloads(canary)[index]
    where, name = (config["train"], field[6:]) if field.startswith("train.") else (config, field)
    if name == "unknown field":
        where[payload] = 1
    else:
        where[name] = [payload] if name in ("slots", "primitives") else payload
    (run_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError) as info:  # RunDirError, ConfigError: each names the field
        LossSearch.resume(run_dir, progress=False, generations=3).fit()
    assert not canary.exists()
    assert "\n" not in str(info.value)
    assert isinstance(info.value, RunDirError) or name in str(info.value) or (
        field == "dataset" and "variant=" in str(info.value))


# -- the caches -------------------------------------------------------------------------------------------------

TINY = {"n_pairs": 16, "seg_len": 10, "progress": False}


@pytest.fixture(scope="module")
def dataset_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("payload-cache")
    ds = bench.build_dataset("hopper", "clean", cache_dir=root, **TINY)
    (path,) = (root / "datasets").iterdir()
    return root, path, ds


def _dataset_places(payload: str) -> dict:
    def meta(data):
        data["config"]["env"] = payload

    def description(data):
        data["description"] = json.dumps({**json.loads(data["description"]), "env": payload})

    def feature_type(data):
        data["features"]["pair_id"]["_type"] = payload

    def format_type(data):
        data["_format_type"] = payload

    def data_file(data):
        data["_data_files"] = [{"filename": payload}]

    return {"meta.json": meta, "data/dataset_info.json": description, "data/dataset_info.json#features": feature_type,
            "data/state.json": format_type, "data/state.json#files": data_file}


@pytest.mark.parametrize("place", sorted(_dataset_places("")))
@pytest.mark.parametrize("index", range(len(PAYLOADS)))
def test_a_tampered_dataset_cache_is_detected_and_nothing_runs(dataset_cache, tmp_path, place, index):
    root, path, ds = dataset_cache
    copy = tmp_path / path.name
    shutil.copytree(path, copy)
    canary = tmp_path / "ran"
    file = copy / place.split("#")[0]
    data = json.loads(file.read_text())
    _dataset_places(_payloads(canary)[index])[place](data)
    file.write_text(json.dumps(data))
    cfg = bench.make_config("hopper", "clean", **{k: v for k, v in TINY.items() if k != "progress"})
    with pytest.warns(UserWarning, match="dataset cache .* is corrupt"):
        assert _dataset._load_cached(copy, _dataset._cache_key(cfg), cfg) is None
    assert not canary.exists()


def test_a_tampered_dataset_cache_is_rebuilt_to_the_same_data(dataset_cache, tmp_path):
    root, path, ds = dataset_cache
    shutil.copytree(root, tmp_path / "root")
    info = tmp_path / "root" / "datasets" / path.name / "data" / "dataset_info.json"
    data = json.loads(info.read_text())
    data["description"] = json.dumps({**json.loads(data["description"]), "env": PAYLOADS[0]})
    info.write_text(json.dumps(data))
    with pytest.warns(UserWarning, match="description differs from the config"):
        again = bench.build_dataset("hopper", "clean", cache_dir=tmp_path / "root", **TINY)
    assert bench.dataset_hash(again) == bench.dataset_hash(ds)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rebuilt cache is clean
        bench.build_dataset("hopper", "clean", cache_dir=tmp_path / "root", **TINY)


class Reduce:
    """Pickles as a call ``function(*args)``: what a malicious pickle does on load."""

    def __init__(self, function, *args) -> None:
        self.call = (function, args)

    def __reduce__(self):
        return self.call


@pytest.fixture(scope="module")
def reference_cache(dataset_cache):
    root, _, ds = dataset_cache
    spec = bench.spec_for_dataset(ds, hidden=(8,))
    good = load_reference(ds, spec, steps=2, cache_dir=root)
    (path,) = (root / "references").glob("*.pt")
    return root, ds, spec, good, path


@pytest.mark.parametrize("how", ["eval in a plain pickle", "eval in torch.save", "payload as a key"])
@pytest.mark.parametrize("index", range(len(PAYLOADS)))
def test_a_tampered_reference_cache_is_refitted_and_nothing_runs(reference_cache, tmp_path, how, index):
    root, ds, spec, good, path = reference_cache
    canary = tmp_path / "ran"
    payload = _payloads(canary)[index]
    if how == "eval in a plain pickle":
        blob = pickle.dumps({"W0": Reduce(builtins.eval, payload)})
    else:
        buffer = io.BytesIO()
        obj = {**good, "W0": Reduce(builtins.eval, payload)} if how == "eval in torch.save" else {**good, payload: good["W0"]}
        torch.save(obj, buffer)
        blob = buffer.getvalue()
    path.write_bytes(blob)
    with pytest.warns(UserWarning, match="SFT reference cache .* is unusable"):
        reference = load_reference(ds, spec, steps=2, cache_dir=root)
    assert not canary.exists()
    assert all(torch.equal(reference[k], good[k]) for k in good)
