"""Smoke tests of paper_repro/bench_baselines.py (the DPO/ORPO table's training loop)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from symloss.bench import build_dataset, fit_reference, pair_tensors, spec_for_dataset
from symloss.objectives import dpo, orpo
from symloss.train import TrainConfig

SCRIPT = Path(__file__).resolve().parents[1] / "paper_repro" / "bench_baselines.py"


def _script():
    spec = importlib.util.spec_from_file_location("bench_baselines", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_baselines", module)  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("loss", [dpo(beta=0.1), orpo(lam=0.1)], ids=["dpo", "orpo"])
def test_train_po_moves_from_reference(tmp_path, loss):
    mod = _script()
    ds = build_dataset("hopper", "clean", n_pairs=24, seg_len=12, cache_dir=tmp_path, progress=False)
    spec = spec_for_dataset(ds, n_bins=5, hidden=(16,))
    ref = fit_reference(spec, ds, steps=10, batch_size=8, seed=0)
    cfg = mod.BaselineConfig(protocol=TrainConfig.preset("final", steps=5, batch_size=8, lr=1e-3))
    params, acc = mod.train_po(spec, ref, pair_tensors(ds, spec), loss, cfg)
    assert 0.0 <= acc <= 1.0
    assert any(not torch.equal(params[k], ref[k]) for k in ref)
    again, _ = mod.train_po(spec, ref, pair_tensors(ds, spec), loss, cfg)
    assert all(torch.equal(params[k], again[k]) for k in ref)


def test_multi_seed_shared_reference(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMLOSS_CACHE", str(tmp_path))
    mod = _script()
    cfg = mod.BaselineConfig(protocol=TrainConfig.preset("final", steps=3, batch_size=4, lr=1e-3, episodes=1),
                             sft_steps=5, dpo_beta=1.0)
    shared = mod.shared_reference("hopper", cfg, 16)
    row = mod.run_cell_seeds("hopper", "noisy", cfg, 16, [1, 2], shared)
    assert row["shared_reference"] and row["seeds"] == [1, 2] and row["label_acc"] < 1.0
    for name in ("dpo", "orpo"):
        per_seed = torch.tensor(row[f"{name}_per_seed"], dtype=torch.float64)
        assert per_seed.shape == (2,)
        assert row[name][0] == pytest.approx(float(per_seed.mean()))
        assert row[name][1] == pytest.approx(float(per_seed.std(correction=0)))
    assert "| noisy | 16 |" in mod.table([row])
    with pytest.raises(Exception, match="distinct integers"):
        mod._seed_list("1,1")
