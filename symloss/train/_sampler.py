"""Minibatch indices of one training seed: drawn with replacement, or in shuffled epochs.

Every member with seed s draws its minibatches from one stream of indices seeded by s, so all candidates with
the same seed see the same pairs (common random numbers). Two streams (``TrainConfig.sampling``):

    replacement:  idx_k ~ U{0, ..., n-1}^B, independently for every step k           (the presets)
    epochs:       pi_1 pi_2 pi_3 ...  (random permutations of {0, ..., n-1}, concatenated), cut into
                  consecutive slices of B: idx_k = (pi_1 pi_2 ...)[k B : (k + 1) B]

With replacement, pair i is seen c_i ~ Binomial(T B, 1/n) times in T steps (7.5 +- 2.7 for 600 x 64 on 5120
pairs), so each seed trains on a randomly reweighted dataset; in epochs every pair is seen floor(T B / n) or
one more time, and the seeds differ only in the order.
"""

from __future__ import annotations

from typing import Literal

import torch

__all__ = ["MinibatchSampler"]


class MinibatchSampler:
    """The minibatch indices of one seed, ``next()`` after ``next()``; a CPU ``torch.Generator`` seeded by the seed.

    ``replacement`` draws exactly what ``torch.randint(0, n, (B,), generator)`` draws step after step (the stream
    every earlier result was trained on).
    """

    def __init__(self, n: int, batch_size: int, seed: int,
                 mode: Literal["replacement", "epochs"] = "replacement") -> None:
        if mode not in ("replacement", "epochs"):
            raise ValueError(f"sampling={mode!r}: must be 'replacement' or 'epochs'")
        self.n, self.batch_size, self.mode = int(n), int(batch_size), mode
        self.generator = torch.Generator().manual_seed(int(seed))
        self._pending = torch.empty(0, dtype=torch.int64)  # the rest of the current permutation (epochs)

    def next(self) -> torch.Tensor:
        """The next minibatch's indices into the training pairs: int64 ``[B]`` on the CPU."""
        if self.mode == "replacement":
            return torch.randint(0, self.n, (self.batch_size,), generator=self.generator)
        while self._pending.numel() < self.batch_size:
            self._pending = torch.cat([self._pending, torch.randperm(self.n, generator=self.generator)])
        idx, self._pending = self._pending[:self.batch_size], self._pending[self.batch_size:]
        return idx
