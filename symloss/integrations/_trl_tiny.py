"""A tiny, fully offline language-model kit for tests, benchmarks and the LLM transfer experiment.

Nothing here downloads: the tokenizer is a byte-level BPE trained in-process with ``tokenizers`` and
wrapped in :class:`transformers.PreTrainedTokenizerFast`; the model is a GPT-2 built from a config with
random weights. Sizes default to what a 2-core CPU trains in milliseconds per step.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from symloss.validation import check_range

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<pad>"


def tiny_tokenizer(corpus: Iterable[str], *, vocab_size: int = 320) -> Any:
    """A byte-level BPE tokenizer trained on ``corpus`` (a few hundred tokens), as a fast HF tokenizer.

    Its eos token is ``<|endoftext|>`` and its pad token ``<pad>``; every byte is in the vocabulary, so
    any text tokenizes.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    check_range("vocab_size", vocab_size, lo=260, integer=True, why="256 bytes plus the special tokens")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS_TOKEN, PAD_TOKEN],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(list(corpus), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=EOS_TOKEN, bos_token=EOS_TOKEN,
                                   pad_token=PAD_TOKEN, padding_side="left")


def tiny_gpt2(tokenizer: Any, *, n_layer: int = 2, n_embd: int = 64, n_head: int = 2, n_positions: int = 128,
              seed: int = 0, dropout: float = 0.1) -> Any:
    """A randomly initialised GPT-2 (``GPT2LMHeadModel``) sized for ``tokenizer``; same seed, same weights.

    ``dropout`` sets GPT-2's three dropout rates (residual, embedding, attention); 0 makes a training forward
    deterministic, so that a step can be recomputed by hand."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=len(tokenizer), n_positions=n_positions, n_embd=n_embd, n_layer=n_layer,
                        n_head=n_head, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id, resid_pdrop=dropout, embd_pdrop=dropout,
                        attn_pdrop=dropout)
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
    finally:
        torch.random.set_rng_state(state)
    return model


def toy_preferences(n: int = 32, *, seed: int = 0) -> dict[str, list[str]]:
    """``n`` preference pairs of the toy task "repeat the digits": the chosen response repeats the prompt's
    digits, the rejected one is a corrupted copy of a different length. Columns prompt, chosen, rejected."""
    rng = random.Random(seed)
    rows: dict[str, list[str]] = {"prompt": [], "chosen": [], "rejected": []}
    for _ in range(n):
        digits = [str(rng.randrange(10)) for _ in range(rng.randint(2, 6))]
        wrong = [str(rng.randrange(10)) for _ in range(rng.randint(1, 7))]
        rows["prompt"].append("repeat " + " ".join(digits) + " =")
        rows["chosen"].append(" " + " ".join(digits))
        rows["rejected"].append(" " + " ".join(wrong))
    return rows


def toy_corpus(rows: dict[str, list[str]]) -> list[str]:
    """Every prompt + response of ``rows``: the text a tokenizer for them is trained on."""
    return [p + c for p, c in zip(rows["prompt"], rows["chosen"])] + \
        [p + r for p, r in zip(rows["prompt"], rows["rejected"])]
