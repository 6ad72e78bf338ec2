"""paper_repro/llm_transfer.py: the task's reward, the preference data, and a smoke run at tiny sizes."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("trl")

SCRIPT = Path(__file__).resolve().parents[1] / "paper_repro" / "llm_transfer.py"


@pytest.fixture(scope="module")
def lt():
    spec = importlib.util.spec_from_file_location("llm_transfer", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["llm_transfer"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("llm_transfer", None)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_reward(lt):
    assert lt.reward([3, 1, 2], " 1 2 3") == 1.0
    assert lt.reward([3, 1, 2], " 1 3 2") == pytest.approx(1 / 3)
    assert lt.reward([3, 1, 2], " 1 2 3 3") == pytest.approx(3 / 4)  # too long costs
    assert lt.reward([3, 1, 2], "") == 0.0


def test_preference_rows_noise_and_order(lt):
    digits = [[3, 1, 2]] * 200
    responses = [[" 1 2 3", " 3 2 1", " 3 2 1"]] * 200
    rows = lt.preference_rows(digits, responses, noise=0.3, rng=random.Random(0))
    assert len(rows["prompt"]) == 200
    for chosen, rejected, flipped in zip(rows["chosen"], rows["rejected"], rows["flipped"], strict=True):
        assert (lt.reward([3, 1, 2], chosen) < lt.reward([3, 1, 2], rejected)) == flipped
    assert 0.2 < sum(rows["flipped"]) / 200 < 0.4
    none = lt.preference_rows([[1, 2]], [[" 1 2", " 1 2"]], noise=0.0, rng=random.Random(0))
    assert none["prompt"] == []  # equal rewards make no pair


def test_default_discovered_is_a_valid_nontrivial_loss(lt):
    loss = lt.default_discovered()
    assert loss.uses_progress and loss.imitation is not None and not loss.reference_free
    assert loss.to_dict() == type(loss).from_dict(loss.to_dict()).to_dict()


def test_quick_run_end_to_end(lt, capsys):
    per_seed = lt.main(["--quick", "--seeds", "0"])
    assert set(per_seed[0]) == {"sft", "dpo", "orpo", "discovered (mpo_robust_ta)"}
    assert per_seed[0]["orpo"]["win_vs_orpo"] == 0.5
    out = capsys.readouterr().out
    assert "| loss | held-out preference accuracy (%) | likelihood-ranking accuracy (%) | win rate vs ORPO (%) | mean reward |" in out


def test_loss_flag_reads_an_artefact(lt, tmp_path):
    import json

    import symloss as sl

    (tmp_path / "best.json").write_text(json.dumps(sl.objectives.simpo().to_dict()))
    per_seed = lt.main(["--quick", "--seeds", "1", "--loss", str(tmp_path)])
    assert "discovered (simpo)" in per_seed[0]


def test_hf_path_with_local_model_and_dataset(lt, tmp_path):
    """--model/--dataset, exercised with local paths (the Hub is not reachable here)."""
    from datasets import Dataset, DatasetDict

    from symloss.integrations._trl_tiny import tiny_gpt2, tiny_tokenizer, toy_corpus, toy_preferences

    rows = toy_preferences(24, seed=5)
    tok = tiny_tokenizer(toy_corpus(rows))
    tiny_gpt2(tok).save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    DatasetDict({"train": Dataset.from_dict(rows), "test": Dataset.from_dict(toy_preferences(8, seed=6))}) \
        .save_to_disk(str(tmp_path / "data"))
    results = lt.main(["--quick", "--model", str(tmp_path / "model"), "--dataset", str(tmp_path / "data")])
    assert set(results[0]) == {"dpo", "orpo", "discovered (mpo_robust_ta)"}
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in results[0].values())
