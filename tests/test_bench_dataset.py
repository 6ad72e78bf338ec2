"""Preference datasets: determinism, schema, label statistics per variant, cache, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from symloss.bench import VARIANTS, build_dataset, dataset_features, dataset_hash, make_config

TINY = {"n_pairs": 60, "seg_len": 20, "progress": False}


def _build(tmp_path, variant="clean", **kw):
    return build_dataset("hopper", variant, cache_dir=tmp_path, **{**TINY, **kw})


def test_same_seed_same_hash_other_seed_differs(tmp_path):
    a = _build(tmp_path / "a", seed=1)
    b = _build(tmp_path / "b", seed=1)
    c = _build(tmp_path / "c", seed=2)
    assert dataset_hash(a) == dataset_hash(b) != dataset_hash(c)


def test_schema(tmp_path):
    ds = _build(tmp_path)
    assert ds.features == dataset_features(make_config("hopper", "clean", n_pairs=60, seg_len=20))
    row = ds.with_format("numpy")[0]
    assert row["chosen_obs"].shape == (20, 11) and row["chosen_actions"].shape == (20, 3)
    assert 10 <= row["chosen_length"] <= 20
    assert np.abs(row["chosen_actions"]).max() <= 1.0
    assert json.loads(ds.info.description)["env"] == "hopper"
    lengths = np.asarray(ds["rejected_length"])
    assert (lengths >= 10).all() and (lengths <= 20).all()


def test_clean_labels_follow_true_return(tmp_path):
    ds = _build(tmp_path)
    assert all(ds["return_agrees"]) and not any(ds["flipped"]) and not any(ds["low_quality"])


def test_noisy_flips_exact_fraction(tmp_path):
    ds = _build(tmp_path, "noisy", flip_fraction=0.25)
    flipped, agrees = np.asarray(ds["flipped"]), np.asarray(ds["return_agrees"])
    assert flipped.sum() == 15
    chosen, rejected = np.asarray(ds["chosen_return"]), np.asarray(ds["rejected_return"])
    untied = chosen != rejected
    assert (agrees[untied] == ~flipped[untied]).all()


def test_mixed_low_quality_pairs(tmp_path):
    ds = _build(tmp_path, "mixed", low_quality_fraction=0.5)
    low = np.asarray(ds["low_quality"])
    assert low.sum() == 30
    levels = np.asarray(ds["chosen_level"])[low].tolist() + np.asarray(ds["rejected_level"])[low].tolist()
    assert set(levels) <= {"random", "weak"}
    assert all(ds["return_agrees"])


def test_bt_labels_are_noisy_but_informative(tmp_path):
    ds = _build(tmp_path, "bt", n_pairs=200, bt_temperature=0.5)
    agree = float(np.mean(ds["return_agrees"]))
    assert 0.6 < agree < 1.0
    sharp = _build(tmp_path, "bt", n_pairs=200, bt_temperature=1e-6)
    assert float(np.mean(sharp["return_agrees"])) > 0.97


def test_combined_variant_and_canonical_name(tmp_path):
    cfg = make_config("tla", "mixed+noisy")
    assert cfg.variant == "noisy+mixed" and cfg.n_pairs == 1280
    assert cfg.flip_fraction > 0 and cfg.low_quality_fraction > 0
    assert make_config("hopper", "shuffled").variant == "noisy"  # the paper's name
    assert set(VARIANTS) >= {"clean", "bt", "noisy", "mixed", "noisy+mixed", "bt+noisy+mixed"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"env": "ant"}, r"env='ant': unknown environment"),
        ({"variant": "noisey"}, r"variant='noisey'.*did you mean 'noisy'"),
        ({"flip_fraction": 1.2}, r"flip_fraction=1.2: must be a finite number in \[0, 1\] \(a fraction of"),
        ({"low_quality_fraction": -0.1}, r"low_quality_fraction=-0.1: must be a finite number in \[0, 1\]"),
        ({"flip_fraction": float("nan")}, r"flip_fraction=nan: must be a finite number in \[0, 1\]"),
        ({"n_pairs": 0}, r"n_pairs=0: must be an integer >= 1"),
        ({"n_pairs": 2.5}, r"n_pairs=2.5: must be an integer >= 1"),
        ({"min_seg_len": 60}, r"min_seg_len=60: must be an integer in \[1, 50\] \(at most seg_len=50\)"),
        ({"seed": -1}, r"seed=-1: must be an integer >= 0"),
        ({"bt_temperature": 0.0}, r"bt_temperature=0.0: must be a finite number > 0"),
        ({"action_noise": float("inf")}, r"action_noise=inf: must be a finite number >= 0"),
        ({"label": "bradley"}, r"label='bradley': must be one of \['return', 'bt'\]"),
        ({"levels": ("expert", "master")}, r"levels='master': must be one of \['random', 'weak', 'medium', 'exp"),
        ({"levels": ()}, r"levels=\(\): must be a non-empty tuple of levels"),
        ({"flip_fractoin": 0.1}, r"did you mean 'flip_fraction'"),
    ],
)
def test_bad_input(kwargs, message):
    kw = {"env": "hopper", "variant": "clean", **kwargs}
    with pytest.raises(ValueError, match=message):
        make_config(kw.pop("env"), kw.pop("variant"), **kw)


def test_cache_reused_rebuilt_on_param_change_and_on_corruption(tmp_path):
    ds = _build(tmp_path)
    good = dataset_hash(ds)
    dirs = list((tmp_path / "datasets").iterdir())
    assert len(dirs) == 1
    assert dataset_hash(_build(tmp_path)) == good  # cache hit
    _build(tmp_path, seed=5)
    assert len(list((tmp_path / "datasets").iterdir())) == 2  # new params, new entry
    arrow = next(Path(dirs[0], "data").glob("*.arrow"))
    blob = bytearray(arrow.read_bytes())
    blob[len(blob) // 2 : len(blob) // 2 + 64] = b"\x7f" * 64
    arrow.write_bytes(bytes(blob))
    with pytest.warns(UserWarning, match="corrupt"):
        again = _build(tmp_path)
    assert dataset_hash(again) == good
    arrow.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="corrupt"):
        assert dataset_hash(_build(tmp_path)) == good


def test_env_var_sets_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMLOSS_CACHE", str(tmp_path / "envcache"))
    build_dataset("hopper", "clean", **TINY)
    assert (tmp_path / "envcache" / "datasets").is_dir()


def test_tla_dataset_shapes(tmp_path):
    ds = build_dataset("tla", "mixed", cache_dir=tmp_path, n_pairs=16, seg_len=20, progress=False)
    row = ds.with_format("numpy")[0]
    assert row["chosen_obs"].shape == (20, 27) and row["chosen_actions"].shape == (20, 6)
    assert int(np.sum(ds["low_quality"])) == 12
