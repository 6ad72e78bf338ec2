"""Shared test settings: offline Hugging Face, non-interactive matplotlib, deterministic torch."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

# One intra-op thread: the tests' tensors are small, and on a shared 2-core machine two threads per
# process oversubscribe the cores (a tiny GPT-2 step measured 65x slower with 2 threads under load).
torch.set_num_threads(1)
