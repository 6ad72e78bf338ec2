"""Step time of MirrorDPOTrainer against TRL's built-in DPO losses on the same tiny GPT-2 (goal: ratio <= 1.05).

    HF_HUB_OFFLINE=1 python benchmarks/trl_overhead.py [--steps 60] [--batch-size 8] [--n-embd 64] [--threads 1]

For each pair (TRL ``loss_type`` vs the symloss zoo loss) both trainers are built on identical models and
data; one optimizer step (``training_step``: policy forward, reference forward, loss, metrics, backward;
then AdamW ``step``) is timed for each in alternation, so that load from other processes hits both alike.
The table gives the median step time of each, the ratio of medians and the ratio's spread over blocks of 10
steps. Everything is offline: the tokenizer is trained in-process and the model is built from a config.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402
from trl import DPOConfig, DPOTrainer  # noqa: E402

import symloss as sl  # noqa: E402
from symloss.integrations import tiny_gpt2, tiny_tokenizer, toy_corpus, toy_preferences  # noqa: E402
from symloss.integrations.trl import MirrorDPOConfig, MirrorDPOTrainer  # noqa: E402

PAIRS = [("sigmoid", sl.objectives.dpo), ("ipo", sl.objectives.ipo), ("discopop", sl.objectives.discopop)]


def build(kind: str, loss_type: str, make, rows, tok, args: argparse.Namespace, out: str):
    common = dict(output_dir=out, per_device_train_batch_size=args.batch_size, max_steps=args.steps + 10,
                  report_to=[], save_strategy="no", seed=0, use_cpu=True, disable_tqdm=True,
                  activation_checkpointing=False)
    model = tiny_gpt2(tok, n_embd=args.n_embd, n_layer=args.n_layer)
    ref = tiny_gpt2(tok, n_embd=args.n_embd, n_layer=args.n_layer)
    data = Dataset.from_dict(rows)
    if kind == "trl":
        return DPOTrainer(model, ref_model=ref, args=DPOConfig(loss_type=[loss_type], **common),
                          train_dataset=data, processing_class=tok)
    return MirrorDPOTrainer(model, ref_model=ref, args=MirrorDPOConfig(**common), train_dataset=data,
                            processing_class=tok, loss=make(beta=0.1))


def time_pair(loss_type: str, make, rows, tok, args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as out:
        trainers = {kind: build(kind, loss_type, make, rows, tok, args, out) for kind in ("trl", "mirror")}
    state = {}
    for kind, trainer in trainers.items():
        trainer.model.train()
        trainer.current_gradient_accumulation_steps = 1  # set by Trainer.train(), read by training_step
        optimizer = torch.optim.AdamW(trainer.model.parameters(), lr=1e-5)
        batches = [trainer._prepare_inputs(b) for b in trainer.get_train_dataloader()]
        state[kind] = (trainer, optimizer, batches)
    times: dict[str, list[float]] = {"trl": [], "mirror": []}
    for step in range(args.steps + args.warmup):
        for kind in (("trl", "mirror") if step % 2 == 0 else ("mirror", "trl")):
            trainer, optimizer, batches = state[kind]
            inputs = batches[step % len(batches)]
            start = time.perf_counter()
            trainer.training_step(trainer.model, inputs)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if step >= args.warmup:
                times[kind].append(time.perf_counter() - start)
            trainer._metrics["train"].clear()
    ratios = [statistics.median(m) / statistics.median(t)
              for t, m in zip(_blocks(times["trl"]), _blocks(times["mirror"]), strict=True)]
    return {"trl_ms": 1e3 * statistics.median(times["trl"]), "mirror_ms": 1e3 * statistics.median(times["mirror"]),
            "ratio": statistics.median(times["mirror"]) / statistics.median(times["trl"]),
            "ratio_lo": min(ratios), "ratio_hi": max(ratios)}


def _blocks(values: list[float], size: int = 10) -> list[list[float]]:
    return [values[i:i + size] for i in range(0, len(values) - size + 1, size)] or [values]


def main(argv: list[str] | None = None) -> list[dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60, help="timed steps per trainer and loss")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8, help="preference pairs per step")
    parser.add_argument("--n-embd", type=int, default=64)
    parser.add_argument("--n-layer", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    hf_logging.set_verbosity_error()
    rows = toy_preferences(256, seed=0)
    tok = tiny_tokenizer(toy_corpus(rows))
    print(f"# MirrorDPOTrainer vs DPOTrainer: GPT-2 n_layer={args.n_layer} n_embd={args.n_embd}, "
          f"batch {args.batch_size} pairs, {args.steps} steps, {args.threads} thread(s), "
          f"{platform.processor() or platform.machine()}, torch {torch.__version__}")
    print("| TRL loss_type | symloss loss | DPOTrainer ms/step | MirrorDPOTrainer ms/step | ratio | ratio range (blocks of 10) |")
    print("|---|---|---|---|---|---|")
    rows_out = []
    for loss_type, make in PAIRS:
        r = time_pair(loss_type, make, rows, tok, args)
        rows_out.append({"loss_type": loss_type, **r})
        print(f"| {loss_type} | {make.__name__}() | {r['trl_ms']:.1f} | {r['mirror_ms']:.1f} | {r['ratio']:.3f} "
              f"| {r['ratio_lo']:.2f}-{r['ratio_hi']:.2f} |", flush=True)
    return rows_out


if __name__ == "__main__":
    main()
