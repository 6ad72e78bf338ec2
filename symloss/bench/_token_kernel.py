"""The token policy's forward and backward pass, written out by hand for N stacked members.

Feature-major layout (rows M last and contiguous), layer i with ``W_i [N, in, out]``, ``b_i [N, 1, out]``,
``h_{i+1} = tanh(a_i)``, ``a_i = b_i^T + W_i^T h_i``. Two exact identities remove every elementwise pass
but one per hidden layer:

    tanh(a) = 2 sigmoid(2a) - 1:  hidden layers store s_{i+1} = sigmoid(u_i), u_i = 2 a_i, so h = 2 s - 1
    a_i = W_i^T h_i + b_i = (2 W_i)^T s_i + (b_i - 1^T W_i)        (for i > 0: h_i = 2 s_i - 1)

so each layer is one GEMM of an "effective" augmented weight with its input plus a row of ones (the bias
rides in the GEMM, no broadcast copy):

    S_0 = [x; 1],  S_{i+1} = [sigmoid(U_i); 1],   U_i = V_i^T S_i           [N, out, M]   (one bmm)
    V_i = g_i [k_i W_i; b_i - [i > 0] 1^T W_i]      [N, in + 1, out],  k_i = 2 if i > 0 else 1,
                                                    g_i = 2 for hidden layers, 1 for the last (U = z)
    z = U_last viewed [N, A, K, M],   logp = z - logsumexp_k z,   out = logp[bin]        [N, A, M]

Backward, for upstream gradient g ``[N, A, M]`` (softmax p = exp(logp)), D_i = dL/dU_i:

    D_last = onehot(bin) g - p g,   dL/dV_i = S_i D_i^T,   D_{i-1} = (V_i[:in] D_i) s_i (1 - s_i)

(``sigmoid_backward``, one pass, in place). Autograd maps dL/dV_i to W_i, b_i through the few small ops of
:func:`effective_weights`; the GEMMs give the bias gradient with the weight gradient (the row of ones).
Scaling by 2 and 4 is exact in floating point; the identities hold exactly in real arithmetic, and in
float64 the result matches the textbook ``tanh`` network to ~1e-14 (tests/test_bench_policy.py).

Why by hand: on a CPU ``torch.tanh`` costs about 4 ns per float32 element here while ``sigmoid`` costs
0.6 ns; autograd would keep each intermediate and add a pass per op. Numbers: benchmarks/RESULTS.md,
population speed and the roofline.
"""

from __future__ import annotations

import torch

__all__ = ["effective_weights", "hidden_forward", "token_logps_fm"]


@torch.no_grad()
def hidden_forward(weights: list[torch.Tensor], biases: list[torch.Tensor],
                   x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits ``[N, out_last, M]`` of inputs ``x [N, D, M]`` (no autograd), and each layer's input ``[x, h_1, ...]``.

    The acting path (``act``): h_{i+1} = 2 sigmoid(2 a_i) - 1 with the factor 2 folded into the baddbmm.
    """
    inputs = [x]
    for i, (w, b) in enumerate(zip(weights, biases)):
        if i == len(weights) - 1:
            return torch.baddbmm(b.transpose(1, 2), w.transpose(1, 2), x), inputs
        x = torch.baddbmm(b.transpose(1, 2), w.transpose(1, 2), x, beta=2, alpha=2)  # 2 a_i
        x = x.sigmoid_().mul_(2).sub_(1)  # tanh(a_i)
        inputs.append(x)
    raise ValueError("weights=[]: a token policy needs at least one layer")


def effective_weights(weights: list[torch.Tensor], biases: list[torch.Tensor]) -> list[torch.Tensor]:
    """V_i ``[N, in + 1, out]`` of the module docstring (differentiable: autograd maps dL/dV back to W, b)."""
    if not weights:
        raise ValueError("weights=[]: a token policy needs at least one layer")
    out = []
    for i, (w, b) in enumerate(zip(weights, biases)):
        v = torch.cat([w, b], 1) if i == 0 else torch.cat([2 * w, b - w.sum(1, keepdim=True)], 1)
        out.append(2 * v if i < len(weights) - 1 else v)
    return out


def _forward(vs: tuple[torch.Tensor, ...], x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits ``U_last [N, out, M]`` and each layer's augmented input ``[S_0, S_1, ...]``."""
    inputs, s = [x], x
    n, m = vs[0].shape[0], x.shape[-1]
    for v in vs[:-1]:
        width = v.shape[-1]
        buf = s.new_empty(n, width + 1, m)
        buf[:, width].fill_(1)
        torch.bmm(v.transpose(1, 2), s, out=buf[:, :width]).sigmoid_()  # s_{i+1} = sigmoid(U_i)
        inputs.append(buf)
        s = buf
    return torch.bmm(vs[-1].transpose(1, 2), s), inputs


class _TokenLogps(torch.autograd.Function):
    """``out[n, d, m] = log softmax_k(z[n, d, :, m])[bin[n, d, m]]`` through the stacked MLP in V form."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, idx: torch.Tensor, n_bins: int, *vs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            z, inputs = _forward(vs, x)
            n, m = z.shape[0], z.shape[-1]
            logp = torch.log_softmax(z.view(n, -1, n_bins, m), dim=2)  # [N, A, K, M]
        ctx.save_for_backward(logp, idx, *inputs, *vs)
        return logp.gather(2, idx).squeeze(2)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        logp, idx, *rest = ctx.saved_tensors
        n_layers = len(rest) // 2
        inputs, vs = rest[:n_layers], rest[n_layers:]
        g = grad.unsqueeze(2)  # [N, A, 1, M]
        d = logp.exp().mul_(g.neg()).scatter_add_(2, idx, g)  # D_last = onehot g - p g
        d = d.view(d.shape[0], -1, d.shape[-1])  # [N, out, M]
        grads: list[torch.Tensor] = []
        for i in reversed(range(n_layers)):
            s = inputs[i]
            grads.append(torch.bmm(s, d.transpose(1, 2)))  # dL/dV_i [N, in + 1, out]
            if i > 0:
                width = s.shape[1] - 1
                e = torch.bmm(vs[i][:, :width], d)  # dL/dS_i [N, in, M]
                d = torch.ops.aten.sigmoid_backward.grad_input(e, s[:, :width], grad_input=e)
        return (None, None, None, *reversed(grads))


def token_logps_fm(weights: list[torch.Tensor], biases: list[torch.Tensor], x: torch.Tensor,
                   idx: torch.Tensor, n_bins: int) -> torch.Tensor:
    """Chosen-bin log-probabilities ``[N, A, M]`` of augmented inputs ``x [N, D + 1, M]`` (last row ones) and
    bins ``idx [N, A, 1, M]``.

    Differentiable once in the weights and biases; the observations ``x`` get no gradient.
    """
    return _TokenLogps.apply(x, idx, n_bins, *effective_weights(weights, biases))
