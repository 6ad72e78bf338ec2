"""A plain single-policy training loop: the readable reference that the population trainer must reproduce.

One policy (N = 1), one loss, ``torch.optim.Adam`` and ``torch.nn.utils.clip_grad_norm_``; minibatches of
``batch_size`` pairs from the seed's stream (``config.sampling``: with replacement or in shuffled epochs). With the same
config and seed, :class:`~symloss.train.PopulationTrainer` with P = 1, S = 1 gives the same losses.
"""

from __future__ import annotations

import torch

from symloss.bench import token_logps
from symloss.objectives import LogpBatch, MirrorLoss
from symloss.train._config import TrainConfig
from symloss.train._data import PreferenceData
from symloss.train._sampler import MinibatchSampler

__all__ = ["train_single"]


def train_single(loss: MirrorLoss, data: PreferenceData, config: TrainConfig, *,
                 seed: int = 0) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Train one policy from ``data.reference`` with ``loss``.

    Returns:
        ``(params, losses)``: final parameters (N = 1) and the minibatch loss of every step ``[steps]``.
    """
    spec, train = data.spec, data.train
    params = {k: v.clone().requires_grad_(True) for k, v in data.reference.items()}
    opt = torch.optim.Adam(params.values(), lr=config.lr, betas=config.betas, eps=config.eps)
    sampler = MinibatchSampler(data.n_train, min(config.batch_size, data.n_train), seed, config.sampling)
    history = torch.empty(config.steps, dtype=data.dtype)
    for step in range(config.steps):
        idx = sampler.next().to(data.device)
        chosen = token_logps(spec, params, train["chosen_obs"][idx], train["chosen_bins"][idx])[0]
        rejected = token_logps(spec, params, train["rejected_obs"][idx], train["rejected_bins"][idx])[0]
        batch = LogpBatch(chosen, rejected, train["chosen_mask"][idx], train["rejected_mask"][idx],
                          train["ref_chosen_logps"][idx], train["ref_rejected_logps"][idx],
                          progress=step / config.steps)
        value = loss.reduce(loss(batch, validate=False).loss)
        opt.zero_grad()
        value.backward()
        if config.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(params.values(), config.max_grad_norm)
        opt.step()
        history[step] = value.detach()
    return {k: v.detach() for k, v in params.items()}, history
