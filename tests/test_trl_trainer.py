"""MirrorDPOTrainer behaviour: reference-free losses, artefacts, progress, config checks, batch helpers."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest
import torch

pytest.importorskip("trl")
from datasets import Dataset  # noqa: E402
from packaging.version import Version  # noqa: E402

import symloss as sl  # noqa: E402
from symloss.integrations import ArtefactError, load_loss  # noqa: E402
from symloss.integrations._trl_batch import logp_batch, spread_sums, training_progress  # noqa: E402
from symloss.integrations._trl_tiny import tiny_gpt2, tiny_tokenizer, toy_corpus, toy_preferences  # noqa: E402
from symloss.integrations.trl import TRL_RANGE, MirrorDPOConfig, MirrorDPOTrainer  # noqa: E402


@pytest.fixture(scope="module")
def toy():
    rows = toy_preferences(32, seed=1)
    return rows, tiny_tokenizer(toy_corpus(rows))


def _args(tmp_path, **kw):
    base = dict(output_dir=str(tmp_path), per_device_train_batch_size=8, max_steps=3, report_to=[], logging_steps=1,
                save_strategy="no", seed=0, use_cpu=True, learning_rate=1e-3, disable_tqdm=True,
                activation_checkpointing=False)
    return MirrorDPOConfig(**{**base, **kw})


def _trainer(toy, tmp_path, loss=None, ref=True, **kw):
    rows, tok = toy
    return MirrorDPOTrainer(tiny_gpt2(tok), ref_model=tiny_gpt2(tok, seed=1) if ref else None,
                            args=_args(tmp_path, **kw), train_dataset=Dataset.from_dict(rows),
                            processing_class=tok, loss=loss)


def test_trl_version_in_tested_range():
    import trl

    assert TRL_RANGE[0] <= Version(trl.__version__) < TRL_RANGE[1]


# -- reference-free losses ------------------------------------------------------------------------------------

def test_reference_free_trains_without_reference_model(toy, tmp_path):
    trainer = _trainer(toy, tmp_path, loss=sl.objectives.orpo(), ref=False)
    assert trainer.ref_model is None
    trainer.train()
    logs = trainer.state.log_history[:-1]
    assert len(logs) == 3 and all(torch.isfinite(torch.tensor(log["loss"])) for log in logs)
    # ORPO's NLL term dominates its loss: the chosen responses get likelier
    assert logs[-1]["logps/chosen"] > logs[0]["logps/chosen"]
    assert logs[0]["mirror/imitation"] > 0


def test_reference_free_warns_and_ignores_a_reference_model(toy, tmp_path):
    with pytest.warns(UserWarning, match=r"ref_model: ignored, the loss 'simpo' is reference-free"):
        trainer = _trainer(toy, tmp_path, loss=sl.objectives.simpo())
    assert trainer.ref_model is None
    trainer.train()


def test_reference_loss_without_loadable_reference_is_a_clear_error(toy, tmp_path):
    with pytest.raises(ValueError, match=r"ref_model=None: the policy has no name or path.*deepcopy"):
        _trainer(toy, tmp_path, loss=sl.objectives.dpo(), ref=False)


# -- where the loss comes from --------------------------------------------------------------------------------

def test_loss_from_config_artefact_file(toy, tmp_path):
    path = tmp_path / "best.json"
    path.write_text(json.dumps({"loss": sl.objectives.cdpo().to_dict(), "fitness": 1.0}))
    trainer = _trainer(toy, tmp_path, mirror_loss=str(tmp_path))  # a run directory: its best.json
    assert trainer.mirror_loss == sl.objectives.cdpo()
    trainer.train()


def test_loss_given_twice_must_agree(toy, tmp_path):
    with pytest.raises(ValueError, match=r"loss='hinge' differs from args.mirror_loss \('dpo'\)"):
        _trainer(toy, tmp_path, loss=sl.objectives.hinge(), mirror_loss="dpo")


def test_no_loss_is_a_clear_error(toy, tmp_path):
    with pytest.raises(ValueError, match=r"loss: none given; pass loss=symloss.objectives.dpo\(\)"):
        _trainer(toy, tmp_path)


def test_unsafe_expression_in_artefact_is_rejected(tmp_path):
    bad = {**sl.objectives.dpo().to_dict(), "mirror": "__import__('os').system('touch pwned')"}
    path = tmp_path / "evil.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(ArtefactError, match=r"evil.json: invalid loss: mirror: unexpected character"):
        load_loss(path)
    with pytest.raises(ArtefactError, match=r"invalid loss"):
        MirrorDPOConfig(output_dir=str(tmp_path), mirror_loss=bad)
    assert not (tmp_path / "pwned").exists()


def test_search_best_json_with_metadata(tmp_path):
    loss = sl.objectives.rdpo()
    best = {**loss.to_dict(), "latex": loss.latex(), "fitness_mean": 1.0, "fitness_std": 0.1, "complexity": 7,
            "key": "abc", "search": {"population": 8}}
    (tmp_path / "best.json").write_text(json.dumps(best))
    assert load_loss(tmp_path) == loss
    (tmp_path / "best.json").write_text(json.dumps({**best, "aggregaton": "mean"}))
    with pytest.raises(ArtefactError, match=r"unknown key 'aggregaton'; did you mean 'aggregation'\?"):
        load_loss(tmp_path)


def test_missing_path_suggests_a_zoo_name(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"did you mean the zoo loss 'orpo'"):
        load_loss("orp")
    with pytest.raises(ArtefactError, match=r"a directory without best.json"):
        load_loss(tmp_path)
    assert load_loss("ipo") == sl.objectives.ipo()


# -- progress and config checks -------------------------------------------------------------------------------

def test_progress_follows_global_step(toy, tmp_path):
    trainer = _trainer(toy, tmp_path, loss=sl.objectives.ta_mpo(), max_steps=4)
    trainer.train()
    progress = [log["mirror/progress"] for log in trainer.state.log_history[:-1]]
    assert progress == [0.0, 0.25, 0.5, 0.75]
    first = trainer.state.log_history[0]  # t = 0: only the imitation term, -u_w
    assert first["loss"] == pytest.approx(first["mirror/imitation"], rel=1e-5)


def test_token_aggregation_cannot_use_precomputed_sums(toy, tmp_path):
    loss = sl.objectives.dpo().replace(aggregation="token")
    with pytest.raises(ValueError, match=r"precompute_ref_log_probs=True: .*aggregation='token'"):
        _trainer(toy, tmp_path, loss=loss, precompute_ref_log_probs=True)


def test_token_aggregation_trains_with_live_reference(toy, tmp_path):
    loss = sl.MirrorLoss("u - log(1 - exp(u))", "softplus(-z)", beta=0.1, aggregation="token", name="tok")
    trainer = _trainer(toy, tmp_path, loss=loss)
    trainer.train()
    assert all(torch.isfinite(torch.tensor(log["loss"])) for log in trainer.state.log_history[:-1])


@pytest.mark.parametrize("option, message", [
    ({"ld_alpha": 0.5}, r"ld_alpha=0.5: LD-DPO weighting is not supported"),
    ({"f_divergence_type": "js_divergence"}, r"f_divergence_type='js_divergence'"),
    ({"use_weighting": True}, r"use_weighting=True"),
])
def test_unsupported_dpo_options(toy, tmp_path, option, message):
    with pytest.raises(ValueError, match=message):
        _trainer(toy, tmp_path, loss=sl.objectives.dpo(), **option)


def test_dpo_loss_type_is_ignored_with_a_warning(toy, tmp_path):
    with pytest.warns(UserWarning, match=r"loss_type=\['ipo'\], loss_weights=None: ignored"):
        _trainer(toy, tmp_path, loss=sl.objectives.dpo(), loss_type="ipo")


# -- pure helpers ---------------------------------------------------------------------------------------------

def test_spread_sums_round_trip():
    mask = torch.tensor([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], dtype=torch.bool)
    sums = torch.tensor([-3.0, -1.5, -2.0])
    tokens = spread_sums(sums, mask)
    assert torch.equal(torch.where(mask, tokens, 0).sum(-1), torch.tensor([-3.0, -1.5, 0.0]))
    assert tokens[0].tolist() == [0.0, -3.0, 0.0, 0.0]


def test_logp_batch_splits_chosen_first():
    per_token = -torch.arange(8.0).reshape(4, 2)
    mask = torch.ones(4, 2)
    batch = logp_batch(per_token, mask, ref_sums=(torch.tensor([-1.0, -2.0]), torch.tensor([-3.0, -4.0])),
                       progress=0.5)
    assert batch.chosen_logps.tolist() == [[0.0, -1.0], [-2.0, -3.0]]
    assert batch.ref_rejected_logps.sum(-1).tolist() == [-3.0, -4.0]
    with pytest.raises(ValueError, match="even number of rows"):
        logp_batch(per_token[:3], mask[:3])


def test_training_progress():
    assert training_progress(0, 10) == 0.0
    assert training_progress(5, 10) == 0.5
    assert training_progress(12, 10) == 1.0
    assert training_progress(3, 0) == 0.0
