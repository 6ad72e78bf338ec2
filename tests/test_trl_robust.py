"""The noise-robust zoo losses in MirrorDPOTrainer: each trains; Dr. DPO's batch reduction gives exactly the
hand-computed SGD step on a tiny offline GPT-2, per micro-batch under gradient accumulation."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest
import torch

pytest.importorskip("trl")
from datasets import Dataset  # noqa: E402
from test_trl_trainer import _args  # noqa: E402

import symloss as sl  # noqa: E402
from symloss.integrations._trl_tiny import tiny_gpt2, tiny_tokenizer, toy_corpus, toy_preferences  # noqa: E402
from symloss.integrations.trl import MirrorDPOTrainer  # noqa: E402

ROBUST = ["ropo", "holder_dpo", "sympo", "repo", "drdpo"]


@pytest.fixture(scope="module")
def toy():
    rows = toy_preferences(16, seed=2)
    return rows, tiny_tokenizer(toy_corpus(rows))


def _config(tmp_path, **kw):
    return _args(tmp_path, **{"per_device_train_batch_size": 4, "max_steps": 2, **kw})


@pytest.mark.parametrize("name", ROBUST)
def test_robust_losses_train_in_mirror_dpo_trainer(toy, tmp_path, name):
    rows, tok = toy
    trainer = MirrorDPOTrainer(tiny_gpt2(tok), ref_model=tiny_gpt2(tok, seed=1), args=_config(tmp_path),
                               train_dataset=Dataset.from_dict(rows), processing_class=tok, loss=name)
    trainer.train()
    logs = trainer.state.log_history[:-1]
    assert len(logs) == 2 and all(torch.isfinite(torch.tensor(log["loss"])) for log in logs)
    assert trainer.mirror_loss == sl.objectives.get_loss(name)


class _Recording(MirrorDPOTrainer):
    """Records the inputs of every compute_loss call (the micro-batches the loss is reduced over)."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        self.seen = [*getattr(self, "seen", []), {k: v.detach().clone() for k, v in inputs.items()}]
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)


def _sequence_logps(model, inputs):
    """Summed completion log-probs of the 2B rows [chosen; rejected], by a plain forward and log_softmax."""
    ids, mask = inputs["input_ids"], inputs["completion_mask"][:, 1:].to(torch.float32)
    logits = model(input_ids=ids, attention_mask=inputs["attention_mask"]).logits[:, :-1]
    per_token = torch.log_softmax(logits.float(), dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    return (per_token * mask).sum(-1).chunk(2)


def _hand_drdpo(policy, ref, inputs, beta, beta_prime):
    """Dr. DPO written out: l_i = -log sigma(beta * Delta_i), L = -b' log mean_i exp(-l_i / b')."""
    chosen, rejected = _sequence_logps(policy, inputs)
    with torch.no_grad():
        ref_chosen, ref_rejected = _sequence_logps(ref, inputs)
    per_pair = -torch.nn.functional.logsigmoid(beta * ((chosen - ref_chosen) - (rejected - ref_rejected)))
    return -beta_prime * torch.log(torch.mean(torch.exp(-per_pair / beta_prime)))


@pytest.mark.parametrize("accumulation", [1, 2])
def test_drdpo_step_matches_a_hand_computed_sgd_step(toy, tmp_path, accumulation):
    """One SGD step (float32: no bf16 autocast, no clipping, no dropout, constant lr) equals the step computed
    by hand from the micro-batches the trainer saw: the gradient of mean_k L_k, each L_k Dr. DPO's log-mean-exp over one
    micro-batch of 4 pairs (under accumulation the reduction does not span the accumulated 8 pairs)."""
    rows, tok = toy
    beta, beta_prime, lr = 0.5, 0.3, 0.5
    loss = sl.objectives.drdpo(beta=beta, beta_prime=beta_prime)
    trainer = _Recording(tiny_gpt2(tok, dropout=0.0), ref_model=tiny_gpt2(tok, seed=1, dropout=0.0),
                         args=_config(tmp_path, max_steps=1, optim="sgd", learning_rate=lr, max_grad_norm=0.0,
                                      lr_scheduler_type="constant", gradient_accumulation_steps=accumulation,
                                      bf16=False),
                         train_dataset=Dataset.from_dict(rows), processing_class=tok, loss=loss)
    trainer.train()
    assert len(trainer.seen) == accumulation and all(len(x["input_ids"]) == 8 for x in trainer.seen)

    policy, ref = tiny_gpt2(tok, dropout=0.0), tiny_gpt2(tok, seed=1, dropout=0.0)
    total = sum(_hand_drdpo(policy, ref, inputs, beta, beta_prime) for inputs in trainer.seen) / accumulation
    params = dict(policy.named_parameters())
    grads = torch.autograd.grad(total, list(params.values()), allow_unused=True)
    trained = dict(trainer.model.named_parameters())
    moved = 0.0
    for (name, p), g in zip(params.items(), grads, strict=True):
        expected = p.detach() - lr * (torch.zeros_like(p) if g is None else g)
        torch.testing.assert_close(trained[name].detach(), expected, rtol=1e-4, atol=1e-6, msg=name)
        moved = max(moved, (expected - p.detach()).abs().max().item())
    assert moved > 1e-4  # the step moved the weights: the comparison is not vacuous
    logged = trainer.state.log_history[0]["loss"]
    assert logged == pytest.approx(total.item(), rel=1e-4)
