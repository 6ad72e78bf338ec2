"""The token policy's forward and backward pass, written out by hand for N stacked members.

Feature-major layout (rows M last and contiguous), layer i with ``W_i [N, in, out]``, ``b_i [N, 1, out]``:

    a_i = b_i^T + W_i^T h_i                 [N, out, M]      (one baddbmm)
    h_{i+1} = tanh(a_i) = 2 sigmoid(2 a_i) - 1                (hidden layers)
    z = a_last viewed [N, A, K, M],   logp = z - logsumexp_k z,   out = logp[bin]      [N, A, M]

Backward, for upstream gradient g ``[N, A, M]`` (softmax p = exp(logp)):

    dz = onehot(bin) g - p g,   dW_i = h_i dA_i^T,   db_i = sum_M dA_i,   dh_i = W_i dA_i,
    dA_{i-1} = dh_i (1 - h_i^2)

Why by hand: on a CPU, ``torch.tanh`` costs about 4 ns per float32 element here while ``sigmoid`` costs
0.6 ns, and the factor 2 folds into the baddbmm (``alpha = beta = 2``) for free; the hand-written backward
reuses the exp(logp) buffer in place and skips autograd's zero-filled gather gradient. The identity
``tanh(x) = 2 sigmoid(2x) - 1`` is exact; in float32 it differs from ``torch.tanh`` by at most ~2e-7
(absolute). Numbers: benchmarks/RESULTS.md, population speed.
"""

from __future__ import annotations

import torch

__all__ = ["hidden_forward", "token_logps_fm"]


@torch.no_grad()
def hidden_forward(weights: list[torch.Tensor], biases: list[torch.Tensor],
                   x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits ``[N, out_last, M]`` of inputs ``x [N, D, M]``, and each layer's input ``[x, h_1, ...]``.

    No autograd (it works in place): gradients come from :func:`token_logps_fm`'s own backward.
    """
    inputs = [x]
    for i, (w, b) in enumerate(zip(weights, biases)):
        if i == len(weights) - 1:
            return torch.baddbmm(b.transpose(1, 2), w.transpose(1, 2), x), inputs
        x = torch.baddbmm(b.transpose(1, 2), w.transpose(1, 2), x, beta=2, alpha=2)  # 2 a_i
        x = x.sigmoid_().mul_(2).sub_(1)  # tanh(a_i)
        inputs.append(x)
    raise ValueError("weights=[]: a token policy needs at least one layer")


class _TokenLogps(torch.autograd.Function):
    """``out[n, d, m] = log softmax_k(z[n, d, :, m])[bin[n, d, m]]`` through the stacked MLP."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, idx: torch.Tensor, n_bins: int, *params: torch.Tensor) -> torch.Tensor:
        weights, biases = list(params[0::2]), list(params[1::2])
        z, inputs = hidden_forward(weights, biases, x)
        n, m = z.shape[0], z.shape[-1]
        logp = torch.log_softmax(z.view(n, -1, n_bins, m), dim=2)  # [N, A, K, M]
        ctx.save_for_backward(logp, idx, *inputs, *weights)
        return logp.gather(2, idx).squeeze(2)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        logp, idx, *rest = ctx.saved_tensors
        n_layers = len(rest) // 2
        inputs, weights = rest[:n_layers], rest[n_layers:]
        g = grad.unsqueeze(2)  # [N, A, 1, M]
        d = logp.exp().mul_(g).neg_().scatter_add_(2, idx, g)  # dz = onehot g - p g
        d = d.view(d.shape[0], -1, d.shape[-1])  # [N, out, M]
        grads: list[torch.Tensor | None] = []
        for i in reversed(range(len(weights))):
            h = inputs[i]
            grads.append(d.sum(-1).unsqueeze(1))  # db_i [N, 1, out]
            grads.append(torch.bmm(h, d.transpose(1, 2)))  # dW_i [N, in, out]
            if i > 0:
                d = torch.ops.aten.tanh_backward(torch.bmm(weights[i], d), h)  # dh_i (1 - h_i^2)
        return (None, None, None, *reversed(grads))


def token_logps_fm(weights: list[torch.Tensor], biases: list[torch.Tensor], x: torch.Tensor,
                   idx: torch.Tensor, n_bins: int) -> torch.Tensor:
    """Chosen-bin log-probabilities ``[N, A, M]`` of inputs ``x [N, D, M]`` and bins ``idx [N, A, 1, M]``.

    Differentiable once in the weights and biases; the observations ``x`` get no gradient.
    """
    params = [t for pair in zip(weights, biases) for t in pair]
    return _TokenLogps.apply(x, idx, n_bins, *params)
