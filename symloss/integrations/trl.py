"""Train a language model with any symloss preference loss through TRL's ``DPOTrainer``.

>>> from symloss.integrations.trl import MirrorDPOConfig, MirrorDPOTrainer
>>> trainer = MirrorDPOTrainer(model, ref_model=ref, args=MirrorDPOConfig(output_dir="out"),
...                            loss="runs/hopper/best.json", train_dataset=ds, processing_class=tok)  # doctest: +SKIP

Per batch of B pairs, TRL's patched forward gives the per-token log-probs of the 2B completions; symloss
builds a :class:`~symloss.objectives.LogpBatch` from them (the reference's per-token log-probs, or its
precomputed sums) with progress t = global_step / max_steps, and the loss is ``loss.reduce`` over the
batch's pairs (the mean, or Dr. DPO's -b' log mean_i exp(-loss_i / b')) of

    loss_i = w_pref(t) * g(z_i, t) + w_imit(t) * psi(u_w,i, t),
    z_i    = beta * ( [m(u_w,i) - m(u_w,i^ref)] - [m(u_l,i) - m(u_l,i^ref)] )

(Alfano et al., arXiv 2411.06568; ``shared/PAPER.md``), with u aggregated as the loss says (``sequence``,
``mean`` or ``token``).

Gradient accumulation and several devices: the reduction runs over the pairs of one ``compute_loss`` call,
that is one micro-batch on one device (``per_device_train_batch_size`` pairs). The Trainer then divides
each micro-batch's loss by ``gradient_accumulation_steps`` and sums the gradients, and DDP averages them
over devices: a step's gradient is the mean of the micro-batch gradients. For the mean reduction that is
the mean over the effective batch; for ``logmeanexp`` it is not the log-mean-exp over the effective batch
(the softmax weights are normalised within each micro-batch). To reduce over more pairs, raise
``per_device_train_batch_size`` rather than the accumulation steps. With ``dpo()``, ``ipo()`` and ``discopop()`` this is TRL's ``sigmoid``, ``ipo`` and
``discopop`` loss to float precision. Metrics carry DPOTrainer's names (see ``_trl_metrics``) plus the
loss's own under ``mirror/``.

Supported TRL: the range in :data:`TRL_RANGE` (it relies on the fused LM head and on ``compute_loss`` being
the loss hook, both TRL >= 1.16 behaviour).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

try:
    import trl as _trl
    from trl import DPOConfig, DPOTrainer
    from trl.trainer import dpo_trainer as _dpo_module
except ImportError as exc:  # pragma: no cover - trl is a core dependency today
    raise ImportError(
        "symloss.integrations.trl needs TRL (>= 1.16, < 2); install it with `pip install symloss[trl]`"
    ) from exc

from packaging.version import Version

from symloss.integrations._artefact import LossSource, load_loss
from symloss.integrations._trl_batch import logp_batch, training_progress
from symloss.integrations._trl_metrics import mirror_metrics, reward_metrics, token_metrics
from symloss.objectives import LogpBatch, MirrorLoss

__all__ = ["TRL_RANGE", "MirrorDPOConfig", "MirrorDPOTrainer"]

logger = logging.getLogger(__name__)

TRL_RANGE = (Version("1.16.0"), Version("2.0.0"))
"""TRL versions MirrorDPOTrainer is written and tested for: [1.16, 2)."""

_NON_MODEL_KEYS = frozenset({"completion_mask", "ref_chosen_logps", "ref_rejected_logps"})

if not TRL_RANGE[0] <= Version(_trl.__version__) < TRL_RANGE[1]:  # pragma: no cover - pinned in tests
    warnings.warn(
        f"trl=={_trl.__version__}: symloss's MirrorDPOTrainer is tested with trl >= {TRL_RANGE[0]}, "
        f"< {TRL_RANGE[1]}; install a version in that range if training fails",
        stacklevel=2,
    )


@dataclass
class MirrorDPOConfig(DPOConfig):
    """:class:`trl.DPOConfig` plus the loss, given as an artefact so that the config stays serialisable.

    The DPO loss options (``loss_type``, ``loss_weights``, ``beta``, ``label_smoothing``, ``discopop_tau``)
    are not read: the MirrorLoss defines the loss, its own ``beta`` included.
    """

    mirror_loss: dict | str | None = field(
        default=None,
        metadata={"help": "The symloss loss: a MirrorLoss.to_dict() dict, a JSON artefact path, a search run "
                          "directory (its best.json) or a zoo name such as 'dpo'. The trainer's loss= argument "
                          "may give it instead."},
    )

    def __post_init__(self) -> None:
        if self.mirror_loss is not None:
            load_loss(self.mirror_loss)  # fail here, before any model is built
        super().__post_init__()

    @property
    def loss(self) -> MirrorLoss | None:
        """The MirrorLoss that ``mirror_loss`` describes, or None."""
        return None if self.mirror_loss is None else load_loss(self.mirror_loss)


def _resolve_loss(loss: LossSource | None, args: DPOConfig | None) -> MirrorLoss:
    from_args = args.loss if isinstance(args, MirrorDPOConfig) else None
    given = None if loss is None else load_loss(loss)
    if given is not None and from_args is not None and given != from_args:
        raise ValueError(
            f"loss={given.name!r} differs from args.mirror_loss ({from_args.name!r}); give the loss in one place"
        )
    resolved = given or from_args
    if resolved is None:
        raise ValueError(
            "loss: none given; pass loss=symloss.objectives.dpo() (or any MirrorLoss, artefact path or dict), "
            "or MirrorDPOConfig(mirror_loss='runs/<name>/best.json')"
        )
    return resolved


def _check_args(loss: MirrorLoss, args: DPOConfig) -> None:
    """Reject the DPOConfig options this trainer cannot honour; warn about those it ignores."""
    if args.ld_alpha is not None:
        raise ValueError(f"ld_alpha={args.ld_alpha}: LD-DPO weighting is not supported by MirrorDPOTrainer; "
                         "set ld_alpha=None")
    if args.f_divergence_type != "reverse_kl":
        raise ValueError(f"f_divergence_type={args.f_divergence_type!r}: MirrorDPOTrainer's divergence is the "
                         "loss's mirror map; use f_divergence_type='reverse_kl'")
    if args.use_weighting:
        raise ValueError("use_weighting=True: WPO weighting is not supported by MirrorDPOTrainer; set it to False")
    if loss.needs_token_logps and args.precompute_ref_log_probs and not loss.reference_free:
        raise ValueError(
            f"precompute_ref_log_probs=True: the loss {loss.name!r} reads per-token log-probs (aggregation="
            f"{loss.aggregation!r}), including the reference's, but TRL precomputes only their sums; set "
            "precompute_ref_log_probs=False"
        )
    if loss.reference_free and args.sync_ref_model:
        raise ValueError(f"sync_ref_model=True: the loss {loss.name!r} is reference-free; set sync_ref_model=False")
    if list(args.loss_type) != ["sigmoid"] or args.loss_weights is not None:
        warnings.warn(f"loss_type={args.loss_type}, loss_weights={args.loss_weights}: ignored, the MirrorLoss "
                      f"{loss.name!r} defines the loss", UserWarning, stacklevel=3)
    if args.beta != loss.beta:
        logger.info("DPOConfig.beta=%s is ignored; the loss's beta=%s is used", args.beta, loss.beta)


@contextlib.contextmanager
def _no_reference_model(trainer: Any) -> Iterator[None]:
    """While DPOTrainer.__init__ runs, make it build no reference model (a reference-free loss needs none).

    DPOTrainer loads a copy of the policy from its name when ``ref_model`` is None; that load is the only
    ``create_model_from_path`` call made after ``Trainer.__init__`` has set ``self.model``."""
    original = _dpo_module.create_model_from_path

    def create(path: str, **kwargs: Any) -> Any:
        if hasattr(trainer, "model"):
            return None
        return original(path, **kwargs)

    _dpo_module.create_model_from_path = create
    try:
        yield
    finally:
        _dpo_module.create_model_from_path = original


def _needs_loadable_name(model: Any, ref_model: Any, args: DPOConfig) -> bool:
    """True when DPOTrainer would load the reference from the policy's name, but the policy has none."""
    if ref_model is not None or args.precompute_ref_log_probs or isinstance(model, str):
        return False
    if getattr(model, "peft_config", None):
        return False
    return not getattr(getattr(model, "config", None), "_name_or_path", "")


class MirrorDPOTrainer(DPOTrainer):
    """TRL's DPOTrainer, training with a symloss :class:`~symloss.objectives.MirrorLoss`.

    Args:
        model, ref_model, args, ...: as :class:`trl.DPOTrainer`. ``args`` may be a :class:`MirrorDPOConfig`.
        loss: the loss: a MirrorLoss, a ``to_dict()`` dict, a JSON artefact, a search run directory or a
            zoo name; or None to read ``args.mirror_loss``.

    A reference-free loss (ORPO, SimPO, ...) trains without a reference model: one given is ignored with a
    warning, and none is loaded. Only :meth:`compute_loss` is overridden.
    """

    def __init__(self, model: Any, ref_model: Any = None, args: DPOConfig | None = None, *positional: Any,
                 loss: LossSource | None = None, **kwargs: Any) -> None:
        mirror_loss = _resolve_loss(loss, args)
        if args is None:
            args = MirrorDPOConfig(output_dir=f"{mirror_loss.name}-MirrorDPO")
        _check_args(mirror_loss, args)
        self.mirror_loss = mirror_loss
        if mirror_loss.reference_free:
            if ref_model is not None:
                warnings.warn(f"ref_model: ignored, the loss {mirror_loss.name!r} is reference-free (its "
                              "reference_free=True); pass ref_model=None", UserWarning, stacklevel=2)
                ref_model = None
            if args.precompute_ref_log_probs:
                warnings.warn(f"precompute_ref_log_probs=True: the loss {mirror_loss.name!r} is reference-free, "
                              "so the precomputed log-probs are never used; set it to False to skip that pass",
                              UserWarning, stacklevel=2)
            with _no_reference_model(self):
                super().__init__(model, ref_model, args, *positional, **kwargs)
            return
        if _needs_loadable_name(model, ref_model, args):
            raise ValueError(
                "ref_model=None: the policy has no name or path to load a reference copy from (built from a "
                "config?); pass ref_model=copy.deepcopy(model) or set precompute_ref_log_probs=True"
            )
        super().__init__(model, ref_model, args, *positional, **kwargs)

    # -- the loss hook --------------------------------------------------------------------------------------

    def compute_loss(self, model: Any, inputs: dict[str, torch.Tensor], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> torch.Tensor | tuple[torch.Tensor, Any]:
        """``loss.reduce`` over the pairs of this micro-batch (module docstring); logs DPOTrainer's metrics and
        ``mirror/*``."""
        mode = "train" if self.model.training else "eval"
        model_kwargs = {k: v for k, v in inputs.items() if k not in _NON_MODEL_KEYS}
        model_kwargs["use_cache"] = False
        if self.aux_loss_enabled:
            model_kwargs["output_router_logits"] = True
        completion_mask = inputs["completion_mask"]
        labels = inputs["input_ids"].masked_fill(completion_mask == 0, -100)
        outputs = model(**model_kwargs, labels=labels, fused_lm_head=True)
        mask = completion_mask[..., 1:]  # [2B, T]
        per_token = outputs.log_probs[:, -mask.size(1):]  # [2B, T]
        batch = self._logp_batch(per_token, mask, inputs, model_kwargs, labels)
        out = self.mirror_loss(batch, validate=False)
        loss = self.mirror_loss.reduce(out.loss)  # the mean, or Dr. DPO's log-mean-exp, over this micro-batch
        if self.aux_loss_enabled:
            loss = loss + self.router_aux_loss_coef * outputs.aux_loss
            self._metrics[mode]["aux_loss"].append(self.accelerator.gather_for_metrics(outputs.aux_loss).mean().item())
        self._log_metrics(mode, outputs, inputs, mask, batch, out)
        if return_outputs:  # DPOTrainer's (deprecated) path: logits need a second forward
            with torch.no_grad():
                outputs = model(**model_kwargs)
            return loss, outputs
        return loss

    def _logp_batch(self, per_token: torch.Tensor, mask: torch.Tensor, inputs: dict[str, torch.Tensor],
                    model_kwargs: dict[str, Any], labels: torch.Tensor) -> LogpBatch:
        progress = training_progress(self.state.global_step, self.state.max_steps)
        if self.mirror_loss.reference_free:
            return logp_batch(per_token, mask, progress=progress)
        if self.precompute_ref_logps:
            sums = (inputs["ref_chosen_logps"], inputs["ref_rejected_logps"])
            return logp_batch(per_token, mask, ref_sums=sums, progress=progress)
        ref_kwargs = {k: v for k, v in model_kwargs.items() if k != "output_router_logits"}
        return logp_batch(per_token, mask, ref_per_token=self._reference_logps(ref_kwargs, labels, mask.size(1)),
                          progress=progress)

    def _reference_logps(self, model_kwargs: dict[str, Any], labels: torch.Tensor, seq_len: int) -> torch.Tensor:
        """The reference's per-token log-probs ``[2B, T]`` (the ref model, or the PEFT base/"ref" adapter)."""
        with torch.no_grad(), _dpo_module.disable_gradient_checkpointing(
                self.model, self.args.gradient_checkpointing_kwargs):
            if _dpo_module.is_peft_model(self.model) and self.ref_model is None:
                unwrapped = self.accelerator.unwrap_model(self.model)
                adapter = "ref" if "ref" in unwrapped.peft_config else None
                with _dpo_module.use_adapter(unwrapped, adapter_name=adapter):
                    ref_outputs = self.model(**model_kwargs, labels=labels, fused_lm_head=True)
            else:
                ref_outputs = self.ref_model(**model_kwargs, labels=labels, fused_lm_head=True)
        return ref_outputs.log_probs[:, -seq_len:]

    def _log_metrics(self, mode: str, outputs: Any, inputs: dict[str, torch.Tensor], mask: torch.Tensor,
                     batch: LogpBatch, out: Any) -> None:
        metrics = self._metrics[mode]
        if mode == "train":
            tokens = self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum().item()
            self._total_train_tokens += tokens // self._tp_size
        metrics["num_tokens"] = [self._total_train_tokens]
        values = {**token_metrics(self.accelerator, outputs, mask),
                  **reward_metrics(self.accelerator, batch, self.mirror_loss.beta),
                  **mirror_metrics(self.accelerator, out, float(torch.as_tensor(batch.progress)))}
        for name, value in values.items():
            metrics[name].append(value)
