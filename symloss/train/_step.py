"""One training step of a chunk of members, run eagerly or replayed from a CUDA graph.

Member i trains candidate ``candidates[i]`` with seed ``seeds[i]``. One step, for every member at once:

    idx_s    = the next B indices of seed s's stream (``_sampler``: with replacement, or shuffled epochs;
               shared by all candidates with seed s)
    logp     = token_logps(params, obs[idx], bins[idx])             [N, 2B, T], one baddbmm per layer
    L_i      = mean_b loss_p(LogpBatch(logp_i, ref[idx_s], t = step / steps))     candidate p's own loss
               (masked sums / means of logp computed once per chunk, not once per candidate)
    grads    = d/d(params) sum_i where(alive_i, L_i, 0)             one backward; members share no parameter
    clip each member's gradient to max_grad_norm, then Adam per member (``_optim``)
    with ``TrainConfig.ema = d``: theta_bar <- d theta_bar + (1 - d) theta         (theta_bar_0 = the reference)
    with ``TrainConfig.checkpoints = K > 1``: a copy of the scored weights after each of K - 1 earlier steps

On CUDA with ``TrainConfig.cuda_graph``, the first ``GRAPH_WARMUP`` steps run eagerly (on a side stream, as
CUDA graph capture requires), one step is then recorded, and every later step replays it: the indices, the
step number and t are copied into static tensors, and the hundreds of small per-candidate loss kernels
launch without Python. The replayed kernels are the eager ones, so results agree to float rounding (the
Adam bias correction is computed on the device instead of in Python).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from symloss.bench import token_logps
from symloss.objectives import LogpBatch, MirrorLoss, aggregate
from symloss.train._config import TrainConfig
from symloss.train._data import PreferenceData
from symloss.train._optim import AdamState, adam_init, adam_step_, clip_grads_, member_grad_norm
from symloss.train._sampler import MinibatchSampler

__all__ = ["BAD_GRAD", "BAD_LOSS", "CURVES", "GRAPH_WARMUP", "train_chunk"]

log = logging.getLogger(__name__)

CURVES: tuple[str, ...] = ("loss", "accuracy", "grad_norm")
BAD_LOSS, BAD_GRAD = 1, 2
GRAPH_WARMUP = 3
"""Eager steps before a CUDA graph is recorded (cuBLAS workspaces, autograd and cached constants set up)."""


def _groups(candidates: Sequence[int]) -> list[tuple[int, int, int]]:
    """Runs of consecutive members with the same candidate: ``(candidate, lo, hi)``."""
    out: list[tuple[int, int, int]] = []
    for i, p in enumerate(candidates):
        if out and out[-1][0] == p:
            out[-1] = (p, out[-1][1], i + 1)
        else:
            out.append((p, i, i + 1))
    return out


def _minibatch(train: dict[str, torch.Tensor], idx: torch.Tensor, seed_pos: torch.Tensor,
               shared: bool) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Inputs of one step: obs ``[2B, L, D]`` (shared) or ``[n, 2B, L, D]``, bins likewise, and per side
    masks / reference log-probs ``[B, T]`` (shared) or ``[n, B, T]``. ``idx``: ``[U, B]``, one row per seed."""
    if shared:
        idx = idx[0]
    obs = torch.cat([train["chosen_obs"][idx], train["rejected_obs"][idx]], dim=-3)
    bins = torch.cat([train["chosen_bins"][idx], train["rejected_bins"][idx]], dim=-3)
    side = {k: train[k][idx] for k in ("chosen_mask", "rejected_mask", "ref_chosen_logps", "ref_rejected_logps")}
    if not shared:
        obs, bins = obs[seed_pos], bins[seed_pos]
        side = {k: v[seed_pos] for k, v in side.items()}
    return obs, bins, side


def _group_batches(losses: Sequence[MirrorLoss], groups: list[tuple[int, int, int]], logp: torch.Tensor,
                   side: dict[str, torch.Tensor], t: torch.Tensor, shared: bool) -> list[LogpBatch]:
    """One LogpBatch per group of members, ``[n_g, B, ...]``.

    A plain MirrorLoss with ``sequence`` or ``mean`` aggregation reads only the aggregated log-probs, so those
    are computed once for the whole chunk (one masked sum per side, not one per candidate) and handed over as
    one-'token' sequences; ``token`` losses and MirrorLoss subclasses get the per-token tensors.
    """
    b = logp.shape[1] // 2
    sizes = [hi - lo for _, lo, hi in groups]
    # one split per tensor (not a slice per group): slicing would make backward O(P^2) in zero-filled grads
    per_token = [x.split(sizes) for x in logp.split(b, dim=1)]
    masks = (side["chosen_mask"], side["rejected_mask"])
    refs = (side["ref_chosen_logps"], side["ref_rejected_logps"])
    summed: dict[str, tuple] = {}

    def members(x: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        return x.expand(hi - lo, *x.shape) if shared else x[lo:hi]

    def aggregated(how: str) -> tuple:
        if how not in summed:
            policy = [aggregate(x, m, how).split(sizes) for x, m in zip(logp.split(b, dim=1), masks)]
            summed[how] = (*policy, *(aggregate(r, m, how) for r, m in zip(refs, masks)))
        return summed[how]

    batches = []
    for g, (p, lo, hi) in enumerate(groups):
        loss = losses[p]
        if not loss.needs_token_logps:  # the loss says it reads only the aggregated log-probs
            w, l_, ref_w, ref_l = aggregated(loss.aggregation)
            batch = LogpBatch.from_sequence_logps(w[g], l_[g], members(ref_w, lo, hi), members(ref_l, lo, hi), t)
        else:
            batch = LogpBatch(per_token[0][g], per_token[1][g], *(members(x, lo, hi) for x in (*masks, *refs)),
                              progress=t)
        batches.append(batch)
    return batches


def _member_losses(losses: Sequence[MirrorLoss], groups: list[tuple[int, int, int]], logp: torch.Tensor,
                   side: dict[str, torch.Tensor], t: torch.Tensor, shared: bool
                   ) -> tuple[torch.Tensor, torch.Tensor, dict[int, str]]:
    """Mean loss and accuracy over the minibatch per member ``[n]``; candidates whose loss raised."""
    b = logp.shape[1] // 2
    out_loss, out_acc, errors = [], [], {}
    for (p, lo, hi), batch in zip(groups, _group_batches(losses, groups, logp, side, t, shared)):
        try:
            out = losses[p](batch, validate=False)
            if out.loss.shape != (hi - lo, b):
                raise ValueError(f"loss shape {tuple(out.loss.shape)}, expected {(hi - lo, b)}")
            out_loss.append(losses[p].reduce(out.loss))  # mean over pairs, or Dr. DPO's log-mean-exp
            out_acc.append(out.accuracy.mean(-1))
        except Exception as exc:  # a candidate never raises inside a batch: it fails alone
            errors[p] = f"loss raised {type(exc).__name__}: {exc}"
            out_loss.append(logp.new_full((hi - lo,), math.nan))
            out_acc.append(logp.new_full((hi - lo,), math.nan))
    return torch.cat(out_loss), torch.cat(out_acc), errors


def _grads(total: torch.Tensor, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if not total.requires_grad:  # every member frozen (or constant losses)
        return {k: torch.zeros_like(v) for k, v in params.items()}
    gs = torch.autograd.grad(total, list(params.values()), allow_unused=True)
    return {k: torch.zeros_like(v) if g is None else g for (k, v), g in zip(params.items(), gs)}


def _fail_(active: torch.Tensor, bad: torch.Tensor, code: torch.Tensor, step: torch.Tensor, c: int,
           k: int | torch.Tensor) -> None:
    """Freeze members that are ``bad`` now: record the code and the step ``k`` (no host sync)."""
    newly = active & bad
    code.masked_fill_(newly, c)
    step.copy_(torch.where(newly, k, step))  # masked_fill_ with a tensor value would sync (.item()) on CUDA
    active &= ~newly


@dataclass
class _Chunk:
    """Training state of one chunk: stacked parameters, Adam moments and failure records (on the device)."""

    params: dict[str, torch.Tensor]
    opt: AdamState
    active: torch.Tensor
    code: torch.Tensor
    failed_at: torch.Tensor
    ema: dict[str, torch.Tensor] | None = None


def _step(cfg: TrainConfig, losses: Sequence[MirrorLoss], data: PreferenceData, groups: list[tuple[int, int, int]],
          state: _Chunk, seed_pos: torch.Tensor, shared: bool, idx: torch.Tensor, k: int | torch.Tensor,
          t: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], dict[int, str]]:
    """One step of every member (module docstring); returns the curves' values ``[n]`` and raised losses."""
    obs, bins, side = _minibatch(data.train, idx, seed_pos, shared)
    logp = token_logps(data.spec, state.params, obs, bins)  # [n, 2B, T]
    loss, acc, errors = _member_losses(losses, groups, logp, side, t, shared)
    _fail_(state.active, ~torch.isfinite(loss), state.code, state.failed_at, BAD_LOSS, k)
    zero = torch.zeros((), dtype=loss.dtype, device=loss.device)
    grads = _grads(torch.where(state.active, loss, zero).sum(), state.params)
    norm = member_grad_norm(grads)
    _fail_(state.active, ~torch.isfinite(norm), state.code, state.failed_at, BAD_GRAD, k)
    clip_grads_(grads, norm, state.active, cfg.max_grad_norm)
    adam_step_(state.params, grads, state.opt, state.active, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)
    if state.ema is not None:
        with torch.no_grad():
            for name, avg in state.ema.items():
                avg.lerp_(state.params[name], 1.0 - cfg.ema)
    return (loss.detach(), acc.detach(), norm.detach()), errors


class _GraphedStep:
    """A step recorded once as a CUDA graph; calling it copies the inputs in and replays the graph."""

    def __init__(self, run: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple],
                 idx: torch.Tensor, t: torch.Tensor) -> None:
        self.idx, self.t = idx.clone(), t.clone()
        self.k = torch.zeros((), dtype=torch.int64, device=idx.device)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out, _ = run(self.idx, self.k, self.t)

    def __call__(self, idx: torch.Tensor, k: int, t: float) -> tuple[torch.Tensor, ...]:
        self.idx.copy_(idx)
        self.k.fill_(k)
        self.t.fill_(t)
        self.graph.replay()
        return self.out


@contextlib.contextmanager
def _on_stream(stream: torch.cuda.Stream | None):
    """Run the block on ``stream`` (ordered after and before the current stream's work); None: as is."""
    if stream is None:
        yield
        return
    current = torch.cuda.current_stream(stream.device)
    stream.wait_stream(current)
    try:
        with torch.cuda.stream(stream):
            yield
    finally:
        current.wait_stream(stream)


def _capture(run: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple], state: _Chunk, idx: torch.Tensor,
             t: torch.Tensor) -> _GraphedStep | None:
    """Record one step; None (train on eagerly) if capture fails, e.g. a loss synchronises with the host."""
    step = state.opt.step
    state.opt.step = torch.tensor(float(step), dtype=torch.float64, device=t.device)  # float64: exact beta^k
    try:
        return _GraphedStep(run, idx, t)
    except RuntimeError as exc:  # nothing ran during the failed capture: the state is as before it
        log.warning("cuda_graph: capture failed (%s); training this chunk eagerly", exc)
        state.opt.step = step
        return None


def _use_graph(cfg: TrainConfig, losses: Sequence[MirrorLoss], data: PreferenceData) -> bool:
    if not cfg.cuda_graph or data.device.type != "cuda" or cfg.steps <= GRAPH_WARMUP:
        return False
    custom = [loss.name for loss in losses if type(loss).__call__ is not MirrorLoss.__call__]
    if custom:
        log.info("cuda_graph: training eagerly, %s override __call__ (Python may branch on values)", custom)
    return not custom


def train_chunk(cfg: TrainConfig, losses: Sequence[MirrorLoss], data: PreferenceData, candidates: list[int],
                seeds: list[int], shared: bool, on_step: Callable[[], None] | None = None) -> dict:
    """Train one chunk of members; returns the params to score (the averages with ``cfg.ema``, then also
    ``last_params``; with ``cfg.checkpoints > 1``, ``checkpoints``: the scored weights at each of
    ``cfg.checkpoint_steps``, the last being ``params``), curves and failure records (on ``data.device``).

    ``on_step`` is called after every step (a progress bar's advance)."""
    n, device, steps = len(candidates), data.device, cfg.steps
    params = {k: v.expand(n, *v.shape[1:]).clone().requires_grad_(True) for k, v in data.reference.items()}
    state = _Chunk(params, adam_init(params), torch.ones(n, dtype=torch.bool, device=device),
                   torch.zeros(n, dtype=torch.int64, device=device), torch.full((n,), -1, dtype=torch.int64, device=device),
                   None if cfg.ema is None else {k: v.detach().clone() for k, v in params.items()})
    uniq = sorted(set(seeds))
    batch_size = min(cfg.batch_size, data.n_train)
    samplers = [MinibatchSampler(data.n_train, batch_size, s, cfg.sampling) for s in uniq]
    seed_pos = torch.tensor([uniq.index(s) for s in seeds], device=device)
    groups = _groups(candidates)
    curves = {c: torch.full((n, steps), math.nan, dtype=data.dtype, device=device) for c in CURVES}
    raised: dict[int, tuple[int, str]] = {}

    def run(idx: torch.Tensor, k: int | torch.Tensor, t: torch.Tensor) -> tuple:
        return _step(cfg, losses, data, groups, state, seed_pos, shared, idx, k, t)

    warmup = torch.cuda.Stream(device) if _use_graph(cfg, [losses[p] for p, _, _ in groups], data) else None
    graphed = None
    pin = device.type == "cuda"
    early = set(cfg.checkpoint_steps[:-1])
    checkpoints: list[dict[str, torch.Tensor]] = []
    to_score = state.params if state.ema is None else state.ema  # updated in place by every step
    for k in range(steps):
        idx = torch.stack([sampler.next() for sampler in samplers])
        idx = idx.pin_memory().to(device, non_blocking=True) if pin else idx
        if graphed is None:
            t = torch.tensor(k / steps, dtype=data.dtype).to(device)  # one copy per step, not one per loss
        if warmup is not None and k == GRAPH_WARMUP:
            graphed, warmup = _capture(run, state, idx, t), None
        if graphed is not None:
            for name, value in zip(CURVES, graphed(idx, k, k / steps)):
                curves[name][:, k] = value
        else:
            with _on_stream(warmup):  # eager: on a side stream during the warm-up before a capture
                values, errors = run(idx, k, t)
                for name, value in zip(CURVES, values):
                    curves[name][:, k] = value
            for p, msg in errors.items():
                raised.setdefault(p, (k, msg))
        if k + 1 in early:
            checkpoints.append({name: v.detach().clone() for name, v in to_score.items()})
        if on_step is not None:
            on_step()
    after = torch.arange(steps, device=device) > state.failed_at[:, None]
    for name in CURVES:  # nothing is recorded for a member after it failed
        curves[name].masked_fill_(after & (state.failed_at[:, None] >= 0), math.nan)
    last = {k: v.detach() for k, v in state.params.items()}
    scored = last if state.ema is None else state.ema
    return {"params": scored, "last_params": None if state.ema is None else last,
            "checkpoints": [*checkpoints, scored] if checkpoints else None,
            "curves": curves, "active": state.active, "code": state.code, "failed_at": state.failed_at,
            "raised": raised}
