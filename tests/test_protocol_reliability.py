"""Smoke test: benchmarks/protocol_reliability.py runs end to end at a tiny size and prints its tables."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def test_protocol_reliability_quick_run_prints_every_figure(tmp_path):
    env = {**os.environ, "SYMLOSS_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT),
           "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "protocol_reliability.py"), "--quick",
                          "--protocol", "final:ema=0.9:checkpoints=2", "--json", str(tmp_path / "study.json")], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout
    assert "split-half rho" in text and "seeds for 10%" in text and "sd seed / state / residual" in text
    assert "moving losses: median (p25-p75), count" in text
    assert "fidelity 'search'" in text and "Spearman rho vs final" in text and "of the final in pair-steps" in text
    assert "| greedy+ema |" in text and "| mean+ema |" in text  # the averaged weights scored beside the last
    assert "greedy+ema against the last weights of the same training" in text
    study = json.loads((tmp_path / "study.json").read_text())
    rules = {"greedy", "mean", "greedy+ema", "mean+ema"}
    rules |= {f"{a}+ema@{c}" for a in ("greedy", "mean") for c in ("4", "avg2", "mix2")}  # checkpoints at 4, 5
    assert set(study["final"]) == rules
    for a in ("greedy", "mean"):  # the averages over the two checkpoints: all start states, or alternate ones
        early, last = (np.array(study["final"][r]["returns"]) for r in (f"{a}+ema@4", f"{a}+ema"))
        np.testing.assert_allclose(np.array(study["final"][f"{a}+ema@avg2"]["returns"]), (early + last) / 2)
        mixed = np.array(study["final"][f"{a}+ema@mix2"]["returns"])
        np.testing.assert_array_equal(mixed[..., 0::2], early[..., 0::2])
        np.testing.assert_array_equal(mixed[..., 1::2], last[..., 1::2])
    assert study["final"]["greedy"]["returns"] != study["final"]["greedy+ema"]["returns"]
    assert len(study["final"]["greedy"]["seeds_moving"]) == 4  # median, p25, p75, count
