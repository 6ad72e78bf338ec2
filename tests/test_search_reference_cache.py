"""The SFT-reference cache: every corruption is detected, warned about (naming the file) and refitted."""

from __future__ import annotations

import io
import os
import pickle
import zipfile

import pytest
import torch

from symloss import bench
from symloss.bench import _reference, load_reference, reference_problem

STEPS = 3


class RunsCode:
    """Unpickling this runs ``os.system('touch <canary>')``."""

    def __init__(self, canary: str) -> None:
        self.canary = canary

    def __reduce__(self):
        return (os.system, (f"touch {self.canary}",))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("refcache")
    ds = bench.build_dataset("hopper", "clean", cache_dir=root, n_pairs=16, seg_len=10, progress=False)
    spec = bench.spec_for_dataset(ds, hidden=(8,))
    good = load_reference(ds, spec, steps=STEPS, cache_dir=root)
    (path,) = (root / "references").glob("*.pt")
    return ds, spec, good, path, root


def _tensors(good, **changes):
    return {**{k: v.clone() for k, v in good.items()}, **changes}


def _corruptions(good, canary):
    """name -> bytes of a corrupt cache file."""
    def saved(obj) -> bytes:
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        return buffer.getvalue()

    missing = _tensors(good)
    missing.pop("b0")
    return {
        "garbage": b"\x00\x13garbage" * 50,
        "empty": b"",
        "truncated zip": saved(good)[:200],
        "plain pickle of lists": pickle.dumps({k: v.tolist() for k, v in good.items()}),
        "pickle payload": pickle.dumps({"W0": RunsCode(canary)}),
        "torch.save payload": saved({"W0": RunsCode(canary)}),
        "missing key": saved(missing),
        "extra key": saved(_tensors(good, evil=torch.zeros(1))),
        "wrong shape": saved(_tensors(good, W0=torch.zeros(3, 3))),
        "wrong dtype": saved(_tensors(good, W0=good["W0"].double())),
        "nan weights": saved(_tensors(good, W0=torch.full_like(good["W0"], float("nan")))),
        "inf weights": saved(_tensors(good, b0=torch.full_like(good["b0"], float("inf")))),
        "a tensor, not a dict": saved(good["W0"]),
    }


def test_the_pickle_payload_would_run_code_if_unpickled(tmp_path):
    canary = tmp_path / "ran"
    pickle.loads(pickle.dumps(RunsCode(str(canary))))  # what a plain unpickler does with it
    assert canary.exists()


@pytest.mark.parametrize("name", ["garbage", "empty", "truncated zip", "plain pickle of lists", "pickle payload",
                                  "torch.save payload", "missing key", "extra key", "wrong shape", "wrong dtype",
                                  "nan weights", "inf weights", "a tensor, not a dict"])
def test_corrupt_reference_cache_is_refitted_with_a_warning(setup, tmp_path, name):
    ds, spec, good, path, root = setup
    canary = tmp_path / "ran"
    path.write_bytes(_corruptions(good, str(canary))[name])
    with pytest.warns(UserWarning, match=f"SFT reference cache {path} is unusable") as record:
        reference = load_reference(ds, spec, steps=STEPS, cache_dir=root)
    assert not canary.exists()  # nothing in the file ran
    assert len(str(record[0].message)) < 400  # one line, not torch's page-long unpickling advice
    assert reference.keys() == good.keys() and all(torch.equal(reference[k], good[k]) for k in good)
    reloaded = torch.load(path, weights_only=True)  # the cache was rewritten with the refitted reference
    assert all(torch.equal(reloaded[k], good[k]) for k in good)
    assert not list(path.parent.glob("*.tmp"))


def test_a_valid_cache_is_used_without_refit(setup, monkeypatch):
    ds, spec, good, _, root = setup
    monkeypatch.setattr(_reference, "fit_reference", lambda *a, **k: pytest.fail("refitted a valid cache"))
    reference = load_reference(ds, spec, steps=STEPS, cache_dir=root)
    assert all(torch.equal(reference[k], good[k]) for k in good)


def test_a_refit_that_gives_nan_is_an_error_and_is_not_cached(setup, tmp_path, monkeypatch):
    ds, spec, good, _, _ = setup
    bad = _tensors(good, W1=torch.full_like(good["W1"], float("nan")))
    monkeypatch.setattr(_reference, "fit_reference", lambda *a, **k: bad)
    with pytest.raises(ValueError, match="'W1' holds non-finite values"):
        load_reference(ds, spec, steps=STEPS, cache_dir=tmp_path)
    assert not list(tmp_path.rglob("*.pt"))


def test_reference_problem_names_each_defect(setup):
    _, spec, good, _, _ = setup
    assert reference_problem(good, spec) == ""
    assert "missing ['b0']" in reference_problem({k: v for k, v in good.items() if k != "b0"}, spec)
    assert "expected torch.float32 of shape" in reference_problem(_tensors(good, W0=torch.zeros(2)), spec)
    assert "not a dense tensor" in reference_problem(_tensors(good, W0=good["W0"].tolist()), spec)
    assert "not a dict" in reference_problem([1, 2], spec)


def test_zip_with_a_pickled_payload_inside_does_not_run(setup, tmp_path):
    """A hand-made torch zip whose data.pkl calls os.system: refused, refitted, nothing runs."""
    ds, spec, good, path, root = setup
    canary = tmp_path / "ran"
    buffer = io.BytesIO()
    torch.save(good, buffer)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename.endswith("data.pkl"):
                data = pickle.dumps(RunsCode(str(canary)), protocol=2)
            target.writestr(item, data)
    path.write_bytes(out.getvalue())
    with pytest.warns(UserWarning, match="unusable"):
        load_reference(ds, spec, steps=STEPS, cache_dir=root)
    assert not canary.exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": -1}, r"steps=-1: must be an integer >= 0"),
    ({"batch_size": 0}, r"batch_size=0: must be an integer >= 1"),
    ({"lr": float("nan")}, r"lr=nan: must be a finite number > 0"),
])
def test_fit_reference_names_the_accepted_range(setup, kwargs, message):
    ds, spec, *_ = setup
    with pytest.raises(ValueError, match=message):
        bench.fit_reference(spec, ds, **kwargs)
