"""The paper's LLM transfer experiment, small and offline: DPO, ORPO and a discovered loss on a tiny GPT-2.

Paper (Alfano et al., arXiv 2411.06568 v1; shared/PAPER.md): on LLM preference tuning with mixed-quality,
shuffled preferences, ORPO reaches 57% held-out preference accuracy and the discovered objective 62%; the
model trained with the discovered objective wins 53% against ORPO's on AlpacaEval.

Here, at a size a 2-core CPU runs in minutes (default: 3 seeds, ~5-10 minutes):

1. Task with a programmatic reward: ``sort 5 2 8 1 =`` -> `` 1 2 5 8``. The reward of a response is the
   fraction of positions holding the right digit, over max(len(response), len(answer)), in [0, 1].
2. A GPT-2 built from a config, pre-trained briefly on the task's text with *random permutations* as
   answers (it learns the format, not the task), then SFT-trained on demonstrations of mixed quality
   (correct answers, and answers with a few swapped digits).
3. Preference data: ``samples`` responses per training prompt are sampled from the SFT model and scored;
   two responses with different rewards form a pair, the better one chosen (mixed quality: both may be
   poor); then a fraction ``label_noise`` of the pairs has its labels swapped (noisy labels, the paper's
   "shuffled" setting).
4. DPO, ORPO and the discovered loss each train the SFT model with MirrorDPOTrainer (same steps, learning
   rate and data; the reference is the SFT model).
5. Metrics, on held-out prompts: preference accuracy: the fraction of held-out pairs (clean labels) whose
   better response the trained loss's own implicit reward ranks higher (``mirror/accuracy``, what TRL's
   ``rewards/accuracies`` is for DPO; for a reference-free loss such as ORPO it ranks by likelihood alone);
   likelihood-ranking accuracy: the same pairs ranked by the policy's length-normalised log-likelihood,
   one rule for every loss; mean reward of sampled responses; and the win rate against ORPO's model: the
   reward judges responses sampled for the same prompt (ties count one half).

The discovered loss defaults to a hand-picked MPO variant (:func:`default_discovered`) until a search
artefact exists; pass one with ``--loss runs/<name>/best.json``.

Full scale elsewhere (documented, not run here): ``--model`` and ``--dataset`` take Hugging Face ids (or
local paths) of a causal LM and of a preference dataset with prompt/chosen/rejected columns and a test
split, e.g. ``--model Qwen/Qwen2.5-0.5B-Instruct --dataset trl-lib/ultrafeedback_binarized``. That path
skips steps 1-3, trains the three losses from the given model and reports held-out preference accuracy;
win rates then need a judge (AlpacaEval), which is outside this script.

    HF_HUB_OFFLINE=1 python paper_repro/llm_transfer.py                 # default: seeds 0 1 2
    HF_HUB_OFFLINE=1 python paper_repro/llm_transfer.py --loss runs/tla/best.json --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import torch  # noqa: E402

from symloss.integrations import load_loss, tiny_gpt2, tiny_tokenizer  # noqa: E402
from symloss.objectives import MirrorLoss, dpo, orpo  # noqa: E402


@dataclass(frozen=True, kw_only=True)
class TransferConfig:
    """Sizes of the small offline experiment (defaults: ~2-3 minutes per seed on one CPU thread)."""

    seeds: tuple[int, ...] = (0, 1, 2)
    """Independent repetitions (data, models, sampling)."""
    n_train_prompts: int = 800
    """Prompts whose sampled responses make the preference data."""
    n_eval_prompts: int = 200
    """Held-out prompts: preference accuracy and win rate."""
    digits: tuple[int, int] = (3, 6)
    """Shortest and longest digit lists to sort."""
    n_layer: int = 2
    n_embd: int = 96
    n_head: int = 4
    pretrain_steps: int = 300
    """LM steps on the format (random permutations as answers)."""
    sft_steps: int = 300
    """SFT steps on mixed-quality demonstrations."""
    lm_batch: int = 64
    lm_lr: float = 2e-3
    sft_correct: float = 0.5
    """Fraction of SFT demonstrations that are correct; the others have 1-3 swapped digits."""
    samples: int = 4
    """Responses sampled per prompt from the SFT model."""
    temperature: float = 1.0
    label_noise: float = 0.3
    """Fraction of preference pairs whose labels are swapped ('shuffled')."""
    po_steps: int = 150
    po_batch: int = 16
    po_lr: float = 5e-4
    threads: int = 1
    """torch intra-op threads (one is fastest for this size on a shared 2-core machine)."""


def default_discovered() -> MirrorLoss:
    """A hand-picked MPO variant standing in for a discovered loss: ORPO's log-odds mirror map on
    length-normalised log-probs, with a reference and a bounded link, and a temporally-aware SFT term:

        m(u) = u - log(1 - e^u),  z = beta ([m(u_w) - m(u_w^ref)] - [m(u_l) - m(u_l^ref)]),
        loss = t * 2 sigma(-z) + (1 - t) * (-u_w) / 2,    beta = 1.

    The bounded link 2 sigma(-z) caps what a mislabeled pair can cost (robust to label noise); the
    imitation weight fades as training progresses (TA-MPO)."""
    return MirrorLoss("u - log(1 - exp(u))", "2*sigmoid(-z)", "-u_w", beta=1.0, w_pref="t", w_imit="(1 - t)/2",
                      aggregation="mean", name="mpo_robust_ta")


# -- the task -------------------------------------------------------------------------------------------------

def prompt_text(digits: list[int]) -> str:
    return "sort " + " ".join(map(str, digits)) + " ="


def answer_text(digits: list[int]) -> str:
    return " " + " ".join(map(str, digits))


def reward(digits: list[int], response: str) -> float:
    """Fraction of positions holding the sorted answer's digit, over max(len(response), len(answer))."""
    target = [str(d) for d in sorted(digits)]
    said = response.split()
    hits = sum(a == b for a, b in zip(said, target))
    return hits / max(len(said), len(target))


def make_prompts(n: int, cfg: TransferConfig, rng: random.Random) -> list[list[int]]:
    lo, hi = cfg.digits
    return [[rng.randrange(10) for _ in range(rng.randint(lo, hi))] for _ in range(n)]


def swapped(values: list[int], rng: random.Random, swaps: int) -> list[int]:
    out = list(values)
    for _ in range(swaps):
        i, j = rng.randrange(len(out)), rng.randrange(len(out))
        out[i], out[j] = out[j], out[i]
    return out


# -- language-model training and sampling ---------------------------------------------------------------------

def lm_train(model, tok, prompts: list[str], answers: list[str], *, steps: int, cfg: TransferConfig,
             seed: int, completion_only: bool) -> None:
    """Next-token training on prompt + answer + eos (loss on the answer only when ``completion_only``)."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lm_lr, weight_decay=0.0)
    model.train()
    for step in range(steps):
        idx = torch.randint(len(prompts), (cfg.lm_batch,), generator=gen).tolist()
        p_ids = [tok(prompts[i])["input_ids"] for i in idx]
        a_ids = [tok(answers[i])["input_ids"] + [tok.eos_token_id] for i in idx]
        width = max(len(p) + len(a) for p, a in zip(p_ids, a_ids))
        ids = torch.full((len(idx), width), tok.pad_token_id)
        labels = torch.full((len(idx), width), -100)
        for row, (p, a) in enumerate(zip(p_ids, a_ids)):
            seq = p + a
            ids[row, : len(seq)] = torch.tensor(seq)
            start = len(p) if completion_only else 0
            labels[row, start: len(seq)] = torch.tensor(seq[start:])
        lr = cfg.lm_lr * min(1.0, (step + 1) / 20) * (1 - step / steps)
        for group in opt.param_groups:
            group["lr"] = lr
        loss = model(input_ids=ids, attention_mask=(labels != -100) | (ids != tok.pad_token_id), labels=labels).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()


@torch.no_grad()
def sample(model, tok, prompts: list[str], *, n: int, temperature: float, seed: int,
           chunk: int = 256) -> list[list[str]]:
    """``n`` sampled responses per prompt (text up to eos)."""
    model.eval()
    torch.manual_seed(seed)
    flat = [p for p in prompts for _ in range(n)]
    texts: list[str] = []
    for i in range(0, len(flat), chunk):
        enc = tok(flat[i: i + chunk], return_tensors="pt", padding=True)
        out = model.generate(**enc, do_sample=True, temperature=temperature, top_k=0, max_new_tokens=16,
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        texts += tok.batch_decode(out[:, enc["input_ids"].size(1):], skip_special_tokens=True)
    return [texts[i * n: (i + 1) * n] for i in range(len(prompts))]


def preference_rows(digit_lists: list[list[int]], responses: list[list[str]], *, noise: float,
                    rng: random.Random) -> dict[str, list]:
    """One pair per prompt from two sampled responses with different rewards; labels swapped w.p. ``noise``."""
    rows: dict[str, list] = {"prompt": [], "chosen": [], "rejected": [], "flipped": []}
    for digits, resp in zip(digit_lists, responses):
        scored = [(reward(digits, r), r) for r in dict.fromkeys(resp) if r.strip()]
        rng.shuffle(scored)
        pair = next(((a, b) for i, a in enumerate(scored) for b in scored[i + 1:] if a[0] != b[0]), None)
        if pair is None:
            continue
        better, worse = sorted(pair, key=lambda x: -x[0])
        flip = rng.random() < noise
        chosen, rejected = (worse, better) if flip else (better, worse)
        rows["prompt"].append(prompt_text(digits))
        rows["chosen"].append(chosen[1])
        rows["rejected"].append(rejected[1])
        rows["flipped"].append(flip)
    return rows


# -- preference optimisation ----------------------------------------------------------------------------------

def train_po(loss: MirrorLoss, sft, tok, rows: dict[str, list], eval_rows: dict[str, list] | None,
             cfg: TransferConfig, seed: int, out_dir: str):
    """Train a copy of ``sft`` with ``loss``; returns (policy, held-out eval metrics or {})."""
    from datasets import Dataset
    from transformers import PrinterCallback

    from symloss.integrations.trl import MirrorDPOConfig, MirrorDPOTrainer

    args = MirrorDPOConfig(output_dir=out_dir, per_device_train_batch_size=cfg.po_batch, max_steps=cfg.po_steps,
                           learning_rate=cfg.po_lr, lr_scheduler_type="linear", warmup_steps=10,
                           per_device_eval_batch_size=64, report_to=[], save_strategy="no", logging_steps=25,
                           seed=seed, use_cpu=True, disable_tqdm=True, activation_checkpointing=False,
                           max_length=64)
    keep = ["prompt", "chosen", "rejected"]
    if not rows["prompt"]:
        raise ValueError("no preference pairs: every prompt's samples had equal rewards; sample more (samples=) "
                         "or train the SFT model longer")
    trainer = MirrorDPOTrainer(copy.deepcopy(sft), ref_model=None if loss.reference_free else copy.deepcopy(sft),
                               args=args, loss=loss, processing_class=tok,
                               train_dataset=Dataset.from_dict({k: rows[k] for k in keep}))
    trainer.remove_callback(PrinterCallback)  # no per-log prints; this script prints its own summary
    trainer.train()
    metrics = {"eval_mirror/accuracy": float("nan")}
    if eval_rows is not None and eval_rows["prompt"]:
        metrics = trainer.evaluate(Dataset.from_dict({k: eval_rows[k] for k in keep}))
    return trainer.model, metrics


@torch.no_grad()
def likelihood_accuracy(model, tok, rows: dict[str, list]) -> float:
    """Fraction of pairs whose chosen response has the higher length-normalised log-likelihood under
    ``model`` (response tokens and eos): one ranking rule for every loss, reference or not."""
    if not rows["prompt"]:
        return float("nan")
    model.eval()
    means = []
    for prompt, response in zip(rows["prompt"] * 2, rows["chosen"] + rows["rejected"]):
        p_ids = tok(prompt)["input_ids"]
        ids = torch.tensor([p_ids + tok(response)["input_ids"] + [tok.eos_token_id]])
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
        token_logps = logp.gather(-1, ids[0, 1:, None])[len(p_ids) - 1:, 0]
        means.append(token_logps.mean().item())
    n = len(rows["prompt"])
    return statistics.fmean(float(c > r) for c, r in zip(means[:n], means[n:]))


def win_rate(a: list[float], b: list[float]) -> float:
    """P(a beats b) over paired scores, ties one half."""
    return statistics.fmean(1.0 if x > y else 0.5 if x == y else 0.0 for x, y in zip(a, b))


def run_seed(seed: int, losses: dict[str, MirrorLoss], cfg: TransferConfig, log=print) -> dict[str, dict]:
    """One repetition: task data, pre-training, SFT, preference data, three PO runs, evaluation."""
    rng = random.Random(seed)
    train_digits = make_prompts(cfg.n_train_prompts, cfg, rng)
    eval_digits = make_prompts(cfg.n_eval_prompts, cfg, rng)
    lm_digits = make_prompts(4000, cfg, rng)
    lm_prompts = [prompt_text(d) for d in lm_digits]
    corpus = [p + answer_text(sorted(d)) for p, d in zip(lm_prompts, lm_digits)]
    tok = tiny_tokenizer(corpus, vocab_size=300)
    model = tiny_gpt2(tok, n_layer=cfg.n_layer, n_embd=cfg.n_embd, n_head=cfg.n_head, n_positions=64, seed=seed)
    start = time.perf_counter()
    lm_train(model, tok, lm_prompts, [answer_text(swapped(d, rng, len(d))) for d in lm_digits],
             steps=cfg.pretrain_steps, cfg=cfg, seed=seed, completion_only=False)
    demos = [sorted(d) if rng.random() < cfg.sft_correct else swapped(sorted(d), rng, rng.randint(1, 3))
             for d in lm_digits]
    lm_train(model, tok, lm_prompts, [answer_text(d) for d in demos], steps=cfg.sft_steps, cfg=cfg,
             seed=seed + 1, completion_only=True)
    log(f"  seed {seed}: pre-training + SFT {time.perf_counter() - start:.0f} s")
    train_resp = sample(model, tok, [prompt_text(d) for d in train_digits], n=cfg.samples,
                        temperature=cfg.temperature, seed=seed)
    rows = preference_rows(train_digits, train_resp, noise=cfg.label_noise, rng=rng)
    eval_prompts = [prompt_text(d) for d in eval_digits]
    eval_rows = preference_rows(eval_digits, sample(model, tok, eval_prompts, n=cfg.samples,
                                                    temperature=cfg.temperature, seed=seed + 7), noise=0.0, rng=rng)
    sft_rewards = [reward(d, r) for d, rs in zip(eval_digits, sample(model, tok, eval_prompts, n=1,
                                                                       temperature=cfg.temperature, seed=seed + 9))
                   for r in rs]
    log(f"  seed {seed}: {len(rows['prompt'])} train pairs ({sum(rows['flipped'])} flipped), "
        f"{len(eval_rows['prompt'])} held-out pairs, SFT mean reward {statistics.fmean(sft_rewards):.3f}")
    results: dict[str, dict] = {"sft": {"reward": statistics.fmean(sft_rewards),
                                        "likelihood_accuracy": likelihood_accuracy(model, tok, eval_rows)}}
    scores: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as out:
        for name, loss in losses.items():
            start = time.perf_counter()
            policy, metrics = train_po(loss, model, tok, rows, eval_rows, cfg, seed, out)
            responses = sample(policy, tok, eval_prompts, n=cfg.samples, temperature=cfg.temperature,
                               seed=seed + 11)
            scores[name] = [reward(d, r) for d, rs in zip(eval_digits, responses) for r in rs]
            results[name] = {"accuracy": metrics["eval_mirror/accuracy"],
                             "likelihood_accuracy": likelihood_accuracy(policy, tok, eval_rows),
                             "reward": statistics.fmean(scores[name])}
            log(f"  seed {seed}: {name}: accuracy {results[name]['accuracy']:.3f} (likelihood ranking "
                f"{results[name]['likelihood_accuracy']:.3f}), mean reward "
                f"{results[name]['reward']:.3f} ({time.perf_counter() - start:.0f} s)")
    for name in losses:
        results[name]["win_vs_orpo"] = win_rate(scores[name], scores["orpo"])
    return results


def summarise(per_seed: list[dict[str, dict]], names: list[str]) -> str:
    def cell(values: list[float], pct: bool = True) -> str:
        scale = 100 if pct else 1
        mean = statistics.fmean(values) * scale
        std = statistics.stdev(values) * scale if len(values) > 1 else 0.0
        return f"{mean:.1f} ± {std:.1f}" if pct else f"{mean:.3f} ± {std:.3f}"

    lines = ["| loss | held-out preference accuracy (%) | likelihood-ranking accuracy (%) | win rate vs ORPO (%) "
             "| mean reward |", "|---|---|---|---|---|"]
    sft = [r["sft"]["reward"] for r in per_seed]
    sft_acc = [r["sft"]["likelihood_accuracy"] for r in per_seed]
    lines.append(f"| SFT (start) | - | {cell(sft_acc)} | - | {cell(sft, pct=False)} |")
    for name in names:
        acc = [r[name]["accuracy"] for r in per_seed]
        win = [r[name]["win_vs_orpo"] for r in per_seed]
        rew = [r[name]["reward"] for r in per_seed]
        lik = [r[name]["likelihood_accuracy"] for r in per_seed]
        lines.append(f"| {name} | {cell(acc)} | {cell(lik)} | {cell(win)} | {cell(rew, pct=False)} |")
    return "\n".join(lines)


def run_hf(model_id: str, dataset_id: str, losses: dict[str, MirrorLoss], cfg: TransferConfig,
           log=print) -> dict[str, dict]:
    """Full-scale path: train each loss from ``model_id`` on ``dataset_id``'s train split, report
    held-out preference accuracy on its test split (win rates need an external judge)."""
    from datasets import load_dataset, load_from_disk
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_id)
    base = AutoModelForCausalLM.from_pretrained(model_id)
    data = load_from_disk(dataset_id) if os.path.isdir(dataset_id) else load_dataset(dataset_id)
    train_split = "train" if "train" in data else next(iter(data))
    test_split = next(s for s in ("test", "test_prefs", "validation") if s in data)
    results = {}
    with tempfile.TemporaryDirectory() as out:
        for name, loss in losses.items():
            _, metrics = train_po(loss, base, tok, data[train_split].to_dict(), data[test_split].to_dict(), cfg,
                                  cfg.seeds[0], out)
            results[name] = {"accuracy": metrics["eval_mirror/accuracy"]}
            log(f"  {name}: held-out preference accuracy {results[name]['accuracy']:.3f}")
    return results


def main(argv: list[str] | None = None) -> list[dict[str, dict]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loss", default=None, help="the discovered loss: artefact JSON, run directory or zoo name "
                                                     "(default: the hand-picked MPO variant)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(TransferConfig.seeds))
    parser.add_argument("--po-steps", type=int, default=TransferConfig.po_steps)
    parser.add_argument("--label-noise", type=float, default=TransferConfig.label_noise)
    parser.add_argument("--quick", action="store_true", help="tiny sizes for a smoke test (seconds)")
    parser.add_argument("--model", default=None, help="Hugging Face model id or path (full scale; not run here)")
    parser.add_argument("--dataset", default=None, help="Hugging Face preference dataset id or path (with --model)")
    args = parser.parse_args(argv)
    cfg = TransferConfig(seeds=tuple(args.seeds), po_steps=args.po_steps, label_noise=args.label_noise)
    if args.quick:
        cfg = dataclasses.replace(cfg, n_train_prompts=48, n_eval_prompts=16, pretrain_steps=4, sft_steps=4,
                                  lm_batch=8, po_steps=2, po_batch=8, n_embd=32, n_head=2)
    torch.set_num_threads(cfg.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    discovered = default_discovered() if args.loss is None else load_loss(args.loss)
    losses = {"dpo": dpo(beta=0.1), "orpo": orpo(lam=0.1), f"discovered ({discovered.name})": discovered}
    if args.model is not None:
        if args.dataset is None:
            parser.error("--model needs --dataset")
        return [run_hf(args.model, args.dataset, losses, cfg)]
    print(f"LLM transfer (offline, tiny GPT-2): seeds {list(cfg.seeds)}, label noise {cfg.label_noise}, "
          f"{cfg.po_steps} PO steps; discovered = {discovered!r}", flush=True)
    start = time.perf_counter()
    per_seed = [run_seed(seed, losses, cfg, log=lambda s: print(s, flush=True)) for seed in cfg.seeds]
    print(f"\n{len(cfg.seeds)} seeds in {time.perf_counter() - start:.0f} s (mean ± std over seeds)\n")
    print(summarise(per_seed, list(losses)))
    return per_seed


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
