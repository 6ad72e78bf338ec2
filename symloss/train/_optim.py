"""Per-member gradient clipping and Adam on stacked parameters ``[N, ...]``: no statistic is shared.

Member n's parameters are the slices ``params[k][n]``. For member n with gradients g_{n,k}:

    ||g_n|| = sqrt(sum_k ||g_{n,k}||^2),   c_n = min(1, max_norm / (||g_n|| + 1e-6))      (clip, as torch)
    m <- beta1 m + (1 - beta1) c_n g,   v <- beta2 v + (1 - beta2) (c_n g)^2
    theta <- theta - lr / (1 - beta1^k) * m / (sqrt(v) / sqrt(1 - beta2^k) + eps)        (Adam, as torch)

Operation for operation the same as ``torch.nn.utils.clip_grad_norm_`` and ``torch.optim.Adam`` (single
tensor path), so one member reproduces a plain loop. Inactive (frozen) members get a zero update, exactly.
These functions update tensors in place (trailing underscore) to keep the hot loop allocation-light.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["AdamState", "adam_init", "adam_step_", "clip_grads_", "member_grad_norm"]

CLIP_EPS = 1e-6


@dataclass
class AdamState:
    """Adam moments of stacked parameters (same keys and shapes) and the shared step count k (a Python int,
    or a 0-dim float64 device tensor when the step is replayed from a CUDA graph)."""

    step: int | torch.Tensor
    exp_avg: dict[str, torch.Tensor]
    exp_avg_sq: dict[str, torch.Tensor]


def adam_init(params: dict[str, torch.Tensor]) -> AdamState:
    """Zero moments for ``params`` (``[N, ...]`` tensors)."""
    return AdamState(0, {k: torch.zeros_like(v) for k, v in params.items()},
                     {k: torch.zeros_like(v) for k, v in params.items()})


def _per_member(x: torch.Tensor) -> list[int]:
    """Shape ``[N, 1, 1, ...]`` that broadcasts a ``[N]`` vector against ``x``."""
    return [x.shape[0]] + [1] * (x.dim() - 1)


def member_grad_norm(grads: dict[str, torch.Tensor]) -> torch.Tensor:
    """L2 norm of each member's full gradient, ``[N]``: sqrt(sum_k ||g_{n,k}||^2)."""
    norms = [torch.linalg.vector_norm(g.flatten(1), 2, dim=1) for g in grads.values()]  # each [N]
    return torch.linalg.vector_norm(torch.stack(norms, dim=1), 2, dim=1)


def clip_grads_(grads: dict[str, torch.Tensor], norm: torch.Tensor, active: torch.Tensor,
                max_norm: float | None) -> None:
    """Scale each member's gradient by c_n (see module docstring); zero inactive members' gradients.

    Args:
        norm: ``[N]`` from :func:`member_grad_norm`; active: ``[N]`` bool.
    """
    coef = None
    if max_norm is not None:
        coef = torch.clamp(max_norm / (norm + CLIP_EPS), max=1.0)
    for k, g in grads.items():
        shape = _per_member(g)
        scaled = g if coef is None else g * coef.view(shape)
        grads[k] = torch.where(active.view(shape), scaled, torch.zeros((), dtype=g.dtype, device=g.device))


@torch.no_grad()
def adam_step_(params: dict[str, torch.Tensor], grads: dict[str, torch.Tensor], state: AdamState,
               active: torch.Tensor, *, lr: float, betas: tuple[float, float], eps: float) -> None:
    """One Adam step of every member in place; members with ``active[n]`` False keep their parameters."""
    beta1, beta2 = betas
    if isinstance(state.step, torch.Tensor):  # graph replay: bias corrections computed on the device
        state.step.add_(1)
        bias_correction1 = 1 - torch.pow(beta1, state.step)
        bias_correction2_sqrt = (1 - torch.pow(beta2, state.step)).sqrt()
        scale = -lr / bias_correction1
        for k, p in params.items():
            exp_avg, exp_avg_sq = _moments_(grads[k], state, k, active, beta1, beta2)
            p.addcdiv_(exp_avg * scale, (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps))
        return
    state.step += 1
    bias_correction1 = 1 - beta1**state.step
    bias_correction2 = 1 - beta2**state.step
    step_size = lr / bias_correction1
    bias_correction2_sqrt = bias_correction2**0.5
    for k, p in params.items():
        exp_avg, exp_avg_sq = _moments_(grads[k], state, k, active, beta1, beta2)
        denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
        p.addcdiv_(exp_avg, denom, value=-step_size)


def _moments_(g: torch.Tensor, state: AdamState, k: str, active: torch.Tensor, beta1: float,
              beta2: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Update the moments of parameter ``k`` in place; frozen members get m = 0 (so their update is 0)."""
    exp_avg, exp_avg_sq = state.exp_avg[k], state.exp_avg_sq[k]
    exp_avg.lerp_(g, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    exp_avg.mul_(active.view(_per_member(exp_avg)).to(exp_avg.dtype))
    return exp_avg, exp_avg_sq
