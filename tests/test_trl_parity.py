"""MirrorDPOTrainer against TRL's DPOTrainer on a tiny offline GPT-2: same seed, same losses and metrics.

Two kinds of parity:

- trajectory: ``train()`` for 6 steps with each trainer; every logged value agrees to 1e-5 (relative for
  values above 1). Run for ``dpo`` and ``ipo``.
- lock-step: at each of 6 training states along DPOTrainer's own trajectory, both trainers compute the loss,
  the gradients and the metrics on the same batch from the same parameters. Run for ``dpo``, ``ipo`` and
  ``discopop``. DiscoPOP needs this form: its float32 training trajectory is chaotic, so that TRL's own
  DiscoPOP with ``logsigmoid`` perturbed by 1e-7 (relative) drifts by ~5e-4 after two Adam steps; any
  formula that is not bit-identical to TRL's does too.
"""

from __future__ import annotations

import math
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest
import torch

pytest.importorskip("trl")
from datasets import Dataset  # noqa: E402
from trl import DPOConfig, DPOTrainer  # noqa: E402

import symloss as sl  # noqa: E402
from symloss.integrations._trl_tiny import tiny_gpt2, tiny_tokenizer, toy_corpus, toy_preferences  # noqa: E402
from symloss.integrations.trl import MirrorDPOConfig, MirrorDPOTrainer  # noqa: E402

STEPS = 6
CASES = [("sigmoid", sl.objectives.dpo), ("ipo", sl.objectives.ipo), ("discopop", sl.objectives.discopop)]
LOCKSTEP = [*[(t, m, {}) for t, m in CASES], ("hinge", sl.objectives.hinge, {}),
            ("robust", sl.objectives.rdpo, {"label_smoothing": 0.1})]


@pytest.fixture(scope="module")
def toy():
    rows = toy_preferences(64, seed=0)
    return rows, tiny_tokenizer(toy_corpus(rows))


def _config(cls, tmp_path, **kw):
    base = dict(output_dir=str(tmp_path), per_device_train_batch_size=8, max_steps=STEPS, report_to=[],
                logging_steps=1, save_strategy="no", seed=0, use_cpu=True, learning_rate=1e-4,
                disable_tqdm=True, activation_checkpointing=False, beta=0.1)
    return cls(**{**base, **kw})


def _trl_trainer(toy, tmp_path, loss_type, **kw):
    rows, tok = toy
    return DPOTrainer(tiny_gpt2(tok), ref_model=tiny_gpt2(tok), args=_config(DPOConfig, tmp_path, loss_type=[loss_type], **kw),
                      train_dataset=Dataset.from_dict(rows), processing_class=tok)


def _mirror_trainer(toy, tmp_path, loss, **kw):
    rows, tok = toy
    return MirrorDPOTrainer(tiny_gpt2(tok), ref_model=tiny_gpt2(tok), args=_config(MirrorDPOConfig, tmp_path, **kw),
                            train_dataset=Dataset.from_dict(rows), processing_class=tok, loss=loss)


def _close(a: float, b: float, tol: float = 1e-5) -> bool:
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)


def _assert_logs_match(trl_logs: list[dict], mirror_logs: list[dict]) -> None:
    assert len(trl_logs) == len(mirror_logs) >= STEPS
    for ours, theirs in zip(mirror_logs, trl_logs, strict=True):
        missing = set(theirs) - set(ours)
        assert not missing, f"MirrorDPOTrainer does not log {sorted(missing)}"
        bad = {k: (theirs[k], ours[k]) for k in theirs if k != "train_runtime" and "per_second" not in k
               and not _close(theirs[k], ours[k])}
        assert not bad, f"step {theirs.get('step')}: (trl, mirror) differ: {bad}"


@pytest.mark.parametrize("loss_type, make", CASES[:2], ids=["dpo", "ipo"])
def test_trajectory_parity(toy, tmp_path, loss_type, make):
    theirs = _trl_trainer(toy, tmp_path / "trl", loss_type)
    theirs.train()
    ours = _mirror_trainer(toy, tmp_path / "mirror", make(beta=0.1))
    ours.train()
    _assert_logs_match(theirs.state.log_history, ours.state.log_history)
    assert all(k.startswith("mirror/") for k in set(ours.state.log_history[0]) - set(theirs.state.log_history[0]))


def _grads(model) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def _step_metrics(trainer) -> dict[str, float]:
    metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    trainer._metrics["train"].clear()
    return metrics


@pytest.mark.parametrize("loss_type, make, trl_kw", LOCKSTEP, ids=["dpo", "ipo", "discopop", "hinge", "rdpo"])
def test_lockstep_parity(toy, tmp_path, loss_type, make, trl_kw):
    theirs = _trl_trainer(toy, tmp_path / "trl", loss_type, **trl_kw)
    ours = _mirror_trainer(toy, tmp_path / "mirror", make(beta=0.1, **trl_kw))
    optimizer = torch.optim.AdamW(theirs.model.parameters(), lr=1e-3)
    batches = iter(theirs.get_train_dataloader())
    for step in range(STEPS):
        inputs = theirs._prepare_inputs(next(batches))
        ours.model.load_state_dict(theirs.model.state_dict())
        ours.state.global_step, ours.state.max_steps = step, STEPS
        losses = []
        for trainer in (theirs, ours):
            trainer.model.train()
            trainer.model.zero_grad()
            loss = trainer.compute_loss(trainer.model, inputs)
            loss.backward()
            losses.append(loss.item())
        loss_t, loss_m = losses
        assert _close(loss_t, loss_m, 1e-6), (step, loss_t, loss_m)
        g_t, g_m = _grads(theirs.model), _grads(ours.model)
        assert torch.allclose(g_t, g_m, rtol=1e-4, atol=1e-6), (step, (g_t - g_m).abs().max().item())
        m_t, m_m = _step_metrics(theirs), _step_metrics(ours)
        bad = {k: (m_t[k], m_m.get(k)) for k in m_t if k != "num_tokens" and not _close(m_t[k], m_m[k])}
        assert not bad, f"step {step}: metrics differ {bad}"
        optimizer.step()  # move along TRL's trajectory (its grads are in place)


def test_precompute_matches_live_reference(toy, tmp_path):
    live = _mirror_trainer(toy, tmp_path / "live", sl.objectives.ipo(beta=0.1))
    live.train()
    pre = _mirror_trainer(toy, tmp_path / "pre", sl.objectives.ipo(beta=0.1), precompute_ref_log_probs=True)
    assert "ref_chosen_logps" in pre.train_dataset.column_names
    pre.train()
    _assert_logs_match(live.state.log_history, pre.state.log_history)
