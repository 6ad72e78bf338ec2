"""export_artefact: latex / python / json / trl texts, bad formats, and the TRL script run on local files."""

from __future__ import annotations

import importlib.util
import json
import os
import re

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest
import torch

import symloss as sl
from symloss.integrations import EXPORT_FORMATS, export_artefact, load_loss


@pytest.fixture
def artefact(tmp_path):
    path = tmp_path / "run" / "best.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"loss": sl.objectives.orpo(lam=0.2).to_dict(), "fitness": 1735.0}))
    return path


def test_formats_listed():
    assert EXPORT_FORMATS == ("latex", "python", "json", "trl")


def test_json_round_trips_and_writes_out(artefact, tmp_path):
    out = tmp_path / "exports" / "loss.json"
    text = export_artefact(artefact.parent, "json", out=out)
    assert out.read_text() == text
    assert load_loss(out) == sl.objectives.orpo(lam=0.2)


def test_latex_and_python(artefact):
    assert r"\psi(u_w)" in export_artefact(artefact, "latex")
    source = export_artefact(artefact, "python")
    assert "def mirror(" in source and "def link(" in source and "def imitation(" in source


@pytest.mark.parametrize("fmt, hint", [("latx", "; did you mean 'latex'?"), ("TRL", "; did you mean 'trl'?"),
                                       ("onnx", "")])
def test_unknown_format(fmt, hint):
    accepted = f"format={fmt!r}: must be one of ['latex', 'python', 'json', 'trl']"
    with pytest.raises(ValueError, match=re.escape(accepted + hint) + "$"):
        export_artefact("dpo", fmt)


def test_bad_artefact_is_reported(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"mirror": "exec(u)", "link": "softplus(-z)"}))
    with pytest.raises(ValueError, match=r"x.json: invalid loss: mirror: unknown name 'exec'"):
        export_artefact(path, "trl")


def test_trl_script_is_valid_python_with_the_ids(artefact):
    text = export_artefact(artefact, "trl", model="org/some-model", dataset="org/some-prefs")
    compile(text, "train_orpo.py", "exec")
    assert "'org/some-model'" in text and "'org/some-prefs'" in text
    assert "eval(" not in text and "exec(" not in text


def test_trl_script_trains_on_local_model_and_dataset(tmp_path):
    """The generated script, run with local paths instead of Hub ids: loads, trains 2 steps, saves."""
    pytest.importorskip("trl")
    from datasets import Dataset

    from symloss.integrations._trl_tiny import tiny_gpt2, tiny_tokenizer, toy_corpus, toy_preferences

    rows = toy_preferences(16, seed=3)
    tok = tiny_tokenizer(toy_corpus(rows))
    model_dir, data_dir = tmp_path / "model", tmp_path / "data"
    tiny_gpt2(tok).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    Dataset.from_dict(rows).save_to_disk(str(data_dir))
    script = tmp_path / "train_dpo.py"
    export_artefact(sl.objectives.dpo(), "trl", out=script)
    spec = importlib.util.spec_from_file_location("generated_train_dpo", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer = module.main(["--model", str(model_dir), "--dataset", str(data_dir), "--max-steps", "2",
                               "--batch-size", "4", "--output-dir", str(tmp_path / "out")])
    finally:
        torch.set_num_threads(before)
    assert trainer.state.global_step == 2
    assert (tmp_path / "out" / "config.json").exists()


@pytest.mark.parametrize("name", ["ropo", "holder_dpo", "sympo", "repo", "drdpo"])
def test_robust_losses_export_in_every_format(name, tmp_path):
    loss = sl.objectives.get_loss(name)
    out = tmp_path / f"{name}.json"
    export_artefact(name, "json", out=out)
    assert load_loss(out) == loss
    latex = export_artefact(out, "latex")
    assert r"g(z) = " in latex and (r"\mathcal{L}_{\mathrm{batch}}" in latex) == (name == "drdpo")
    source = tmp_path / f"{name}_slots.py"
    export_artefact(out, "python", out=source)
    spec = importlib.util.spec_from_file_location(f"exported_{name}", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    z = torch.linspace(-3, 3, 7, dtype=torch.float64)
    torch.testing.assert_close(module.link(z, torch.zeros(())), loss.fn("link")(z, 0.0))
    script = export_artefact(out, "trl")
    compile(script, f"train_{name}.py", "exec")
    assert "eval(" not in script and ('"reduction": "logmeanexp"' in script) == (name == "drdpo")
