"""Tokenised policies held as stacked tensors: N members evaluated with one batched matmul per layer.

A policy maps an observation to one categorical per action dimension over ``n_bins`` bins whose
centres are ``c_k = low + k (high - low) / (n_bins - 1)``, k = 0..n_bins-1 (both bounds included).
A segment of L steps is then a sequence of ``L * act_dim`` tokens (step-major: step 0's dimensions,
then step 1's, ...), each with probability pi(bin | obs) in (0, 1], exactly like an LLM response.

Functional form, so that a population is one set of tensors:

    params["W{i}"]: [N, in_i, out_i],  params["b{i}"]: [N, 1, out_i]
    h_0 = (obs - obs_shift) / obs_scale,  h_{i+1} = tanh(h_i W_i + b_i),  logits = h W_last + b_last
    log pi(bin_d | obs) = logits[d, bin_d] - logsumexp_k logits[d, k]

computed feature-major (rows M last) so that the softmax over the bins is vectorised over the rows.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from symloss.bench._token_kernel import hidden_forward, token_logps_fm

__all__ = ["ACTIONS", "TokenPolicySpec", "init_params", "token_logps", "act", "tokenize", "detokenize", "token_mask"]


@dataclass(frozen=True, kw_only=True)
class TokenPolicySpec:
    """Shape and discretisation of a tokenised MLP policy (no weights: those live in ``params``)."""

    obs_dim: int
    """Observation size (Hopper 11, TLA 27)."""
    act_dim: int
    """Action size (Hopper 3, TLA 6); one categorical per dimension."""
    n_bins: int = 11
    """Bins per action dimension; >= 2."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer widths (tanh)."""
    act_low: float = -1.0
    """Lower action bound (the first bin's centre)."""
    act_high: float = 1.0
    """Upper action bound (the last bin's centre)."""
    obs_shift: tuple[float, ...] | None = None
    """Observation mean subtracted before the first layer (``None``: 0)."""
    obs_scale: tuple[float, ...] | None = None
    """Observation scale divided out before the first layer (``None``: 1)."""

    def __post_init__(self) -> None:
        for name in ("obs_dim", "act_dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r}: must be >= 1")
        if int(self.n_bins) < 2:
            raise ValueError(f"n_bins={self.n_bins!r}: must be >= 2 (a categorical needs two bins)")
        if not self.act_low < self.act_high:
            raise ValueError(f"act_low={self.act_low!r}, act_high={self.act_high!r}: need act_low < act_high")
        if any(int(h) < 1 for h in self.hidden):
            raise ValueError(f"hidden={self.hidden!r}: every width must be >= 1")
        for name in ("obs_shift", "obs_scale"):
            val = getattr(self, name)
            if val is not None and len(val) != self.obs_dim:
                raise ValueError(f"{name}: length {len(val)} must equal obs_dim={self.obs_dim}")

    @property
    def sizes(self) -> tuple[int, ...]:
        """Layer widths from input to logits: ``(obs_dim, *hidden, act_dim * n_bins)``."""
        return (self.obs_dim, *self.hidden, self.act_dim * self.n_bins)

    @property
    def n_layers(self) -> int:
        """Number of affine layers."""
        return len(self.sizes) - 1

    def centres(self, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
        """Bin centres ``[n_bins]``."""
        return torch.linspace(self.act_low, self.act_high, self.n_bins, dtype=dtype, device=device)


def init_params(
    spec: TokenPolicySpec, n_members: int, generator: torch.Generator, *, dtype: torch.dtype = torch.float32
) -> dict[str, torch.Tensor]:
    """Fresh parameters for ``n_members`` policies: ``W{i} [N, in, out]`` ~ U(+-1/sqrt(in)), ``b{i}`` = 0.

    The last layer is scaled by 0.01 so that every member starts near the uniform distribution.
    """
    if int(n_members) < 1:
        raise ValueError(f"n_members={n_members!r}: must be >= 1")
    params: dict[str, torch.Tensor] = {}
    for i, (n_in, n_out) in enumerate(zip(spec.sizes[:-1], spec.sizes[1:])):
        bound = 1.0 / math.sqrt(n_in) * (0.01 if i == spec.n_layers - 1 else 1.0)
        w = torch.rand(n_members, n_in, n_out, generator=generator, dtype=dtype) * (2 * bound) - bound
        params[f"W{i}"] = w
        params[f"b{i}"] = torch.zeros(n_members, 1, n_out, dtype=dtype)
    return params


def _logits_fm(spec: TokenPolicySpec, params: dict[str, torch.Tensor], obs: torch.Tensor) -> torch.Tensor:
    """Logits in feature-major layout ``[N, act_dim, n_bins, M]`` for observations ``[N, M, obs_dim]`` or
    shared ``[M, obs_dim]``.

    Rows stay the last (contiguous) axis all the way: ``h_{i+1}^T = tanh(b_i^T + W_i^T h_i^T)``. The same
    products as the row layout, but the softmax over the bins then reduces over a non-last axis of size
    ``n_bins`` with M contiguous rows inside, which torch vectorises over the rows: about 10x faster, forward
    and backward, than a last-axis softmax of size 11 (benchmarks/RESULTS.md, population speed).
    """
    x = _inputs_fm(spec, params, obs)
    logits, _ = hidden_forward(_layer(params, "W", spec), _layer(params, "b", spec), x)
    return logits.view(x.shape[0], spec.act_dim, spec.n_bins, x.shape[-1])


def _layer(params: dict[str, torch.Tensor], kind: str, spec: TokenPolicySpec) -> list[torch.Tensor]:
    """``[params["W0"], params["W1"], ...]`` (``kind="W"``) or the biases (``kind="b"``), input layer first."""
    return [params[f"{kind}{i}"] for i in range(spec.n_layers)]


@functools.lru_cache(maxsize=64)
def _constant(values: tuple[float, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A cached constant tensor: no host-to-device copy per call (none is allowed inside a CUDA graph capture)."""
    return torch.tensor(values, dtype=dtype, device=device)


def _inputs_fm(spec: TokenPolicySpec, params: dict[str, torch.Tensor], obs: torch.Tensor) -> torch.Tensor:
    """Normalised observations ``[N, obs_dim, M]`` (a broadcast view when ``obs`` is shared ``[M, obs_dim]``)."""
    n = params["W0"].shape[0]
    x = obs.to(params["W0"].dtype)
    if spec.obs_shift is not None:
        x = x - _constant(tuple(spec.obs_shift), x.dtype, x.device)
    if spec.obs_scale is not None:
        x = x / _constant(tuple(spec.obs_scale), x.dtype, x.device)
    x = x.transpose(-1, -2)  # [D, M] or [N, D, M]
    return x.unsqueeze(0).expand(n, -1, -1) if x.dim() == 2 else x


def _inputs_augmented(spec: TokenPolicySpec, params: dict[str, torch.Tensor], obs: torch.Tensor) -> torch.Tensor:
    """``[x; 1]``: normalised observations plus a row of ones, ``[N, obs_dim + 1, M]`` for observations
    ``[N, M, obs_dim]`` or shared ``[M, obs_dim]`` (then a broadcast view over the N members)."""
    n, dtype = params["W0"].shape[0], params["W0"].dtype
    buf = torch.empty(*obs.shape[:-2], spec.obs_dim + 1, obs.shape[-2], dtype=dtype, device=obs.device)
    buf[..., spec.obs_dim, :].fill_(1)
    x, raw = buf[..., :spec.obs_dim, :], obs.transpose(-1, -2)
    if spec.obs_shift is not None:
        torch.sub(raw, _constant(tuple(spec.obs_shift), dtype, obs.device)[:, None], out=x)
    else:
        x.copy_(raw)
    if spec.obs_scale is not None:
        x.div_(_constant(tuple(spec.obs_scale), dtype, obs.device)[:, None])
    return buf.unsqueeze(0).expand(n, -1, -1) if buf.dim() == 2 else buf


def token_logps(
    spec: TokenPolicySpec, params: dict[str, torch.Tensor], obs: torch.Tensor, bins: torch.Tensor
) -> torch.Tensor:
    """Per-token log-probabilities ``log pi_n(bin_{b,t,d} | obs_{b,t})``.

    Args:
        obs: ``[B, L, obs_dim]`` shared by all members, or ``[N, B, L, obs_dim]`` per member.
        bins: ``[B, L, act_dim]`` (or ``[N, B, L, act_dim]``) integer bin indices in ``[0, n_bins)``.

    Returns:
        ``[N, B, L * act_dim]`` log-probs (step-major token order), differentiable in ``params``.
    """
    lead = obs.shape[:-1]  # [B, L] or [N, B, L]
    x = _inputs_augmented(spec, params, obs.reshape(*lead[:-2], -1, spec.obs_dim))  # [N, D + 1, M]
    n, b, length = x.shape[0], lead[-2], lead[-1]
    idx = bins.long().reshape(*bins.shape[:-3], b * length, spec.act_dim).transpose(-1, -2)  # [(N,) A, M]
    idx = idx.unsqueeze(-2).expand(n, -1, -1, -1)  # [N, A, 1, M]
    chosen = token_logps_fm(_layer(params, "W", spec), _layer(params, "b", spec), x, idx, spec.n_bins)  # [N, A, M]
    return chosen.transpose(1, 2).reshape(n, b, length * spec.act_dim)


ACTIONS: tuple[str, ...] = ("greedy", "mean", "sample")
"""Action rules of :func:`act`: ``greedy`` (most probable bin), ``mean`` (expected bin centre under the
tempered policy) and ``sample`` (a bin drawn from the policy)."""


def act(
    spec: TokenPolicySpec,
    params: dict[str, torch.Tensor],
    obs: torch.Tensor,
    greedy: bool = True,
    generator: torch.Generator | None = None,
    *,
    action: str | None = None,
    temperature: float = 0.25,
    uniform: torch.Tensor | None = None,
) -> torch.Tensor:
    """Actions ``[N, E, act_dim]`` for observations ``[N, E, obs_dim]`` (or ``[E, obs_dim]`` shared).

    ``action`` (default ``"greedy"``, or ``"sample"`` when ``greedy=False``) picks, per action dimension d:

        greedy:  a_d = c_{argmax_k l_dk}                          (a bin centre; piecewise constant in the weights)
        mean:    a_d = sum_k softmax(l_d / temperature)_k c_k     (smooth; temperature -> 0 is greedy)
        sample:  a_d = c_k with k ~ softmax(l_d)                  (``uniform`` [N, E, act_dim] in [0, 1) drives
                                                                   the draw by inverse CDF; else ``generator``)

    where l_dk are the logits and c_k the bin centres.
    """
    rule = action if action is not None else ("greedy" if greedy else "sample")
    if rule not in ACTIONS:
        raise ValueError(f"action={rule!r}: must be one of {list(ACTIONS)}")
    with torch.no_grad():
        logits = _logits_fm(spec, params, obs).permute(0, 3, 1, 2)  # [N, E, A, K]
        centres = spec.centres(dtype=logits.dtype, device=logits.device)
        if rule == "mean":
            return (torch.softmax(logits / temperature, -1) * centres).sum(-1)
        if rule == "greedy":
            return centres[logits.argmax(-1)]
        probs = torch.softmax(logits, -1)
        if uniform is None:
            uniform = torch.rand(probs.shape[:-1], generator=generator, dtype=probs.dtype)
        below = (probs.cumsum(-1) < uniform.to(probs.dtype)[..., None]).sum(-1)
        return centres[below.clamp(max=spec.n_bins - 1)]


def tokenize(spec: TokenPolicySpec, actions: torch.Tensor) -> torch.Tensor:
    """Nearest bin index of continuous actions (clipped to the bounds): same shape, int64."""
    frac = (actions.clamp(spec.act_low, spec.act_high) - spec.act_low) / (spec.act_high - spec.act_low)
    return torch.round(frac * (spec.n_bins - 1)).long()


def detokenize(spec: TokenPolicySpec, bins: torch.Tensor) -> torch.Tensor:
    """Bin centres of bin indices: same shape, float32."""
    return spec.centres(device=bins.device)[bins.long()]


def token_mask(lengths: torch.Tensor, seg_len: int, act_dim: int) -> torch.Tensor:
    """Boolean token mask ``[B, seg_len * act_dim]``: token (t, d) is valid when ``t < lengths[b]``."""
    steps = torch.arange(seg_len, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)  # [B, L]
    return steps.repeat_interleave(act_dim, dim=1)
