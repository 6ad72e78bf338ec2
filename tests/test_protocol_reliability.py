"""Smoke test: benchmarks/protocol_reliability.py runs end to end at a tiny size and prints its tables."""

import gzip
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
    assert not list((tmp_path / "cache").rglob("*"))  # the tiny dataset and reference stay out of the user's cache
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
    assert "projected from the variance components to E' start states" in text
    assert set(study["final"]["greedy"]["seeds_moving_projected"]) == {"2", "4", "8", "inf"}  # E = 2 in --quick


def _module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("protocol_reliability", ROOT / "benchmarks" / "protocol_reliability.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def test_protocol_reliability_soups_of_checkpoints(tmp_path):
    """With checkpoints and soups, every checkpoint's soups are scored and averaged like the seeds' checkpoints."""
    env = {**os.environ, "SYMLOSS_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT),
           "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "protocol_reliability.py"), "--quick",
                          "--seeds", "4", "--actions", "greedy", "--fidelities", "",
                          "--protocol", "final:ema=0.9:checkpoints=2:soup=2", "--json", str(tmp_path / "s.json")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    final = json.loads((tmp_path / "s.json").read_text())["final"]
    assert {"greedy~soup2", "greedy+ema~soup2", "greedy+ema@4~soup2", "greedy+ema~soup2@avg2",
            "greedy+ema~soup2@mix2"} <= set(final)  # the protocol's soup=2 is scored without --soups
    early, last = (np.array(final[r]["returns"]) for r in ("greedy+ema@4~soup2", "greedy+ema~soup2"))
    assert early.shape[1] == 2  # 4 seeds in soups of 2
    np.testing.assert_allclose(np.array(final["greedy+ema~soup2@avg2"]["returns"]), (early + last) / 2)
    mixed = np.array(final["greedy+ema~soup2@mix2"]["returns"])
    np.testing.assert_array_equal(mixed[..., 0::2], early[..., 0::2])
    np.testing.assert_array_equal(mixed[..., 1::2], last[..., 1::2])
    assert final["greedy+ema~soup2@avg2"]["seeds_per_unit"] == 2 and final["greedy+ema@avg2"]["seeds_per_unit"] == 1
    only = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "protocol_reliability.py"), "--quick",
                           "--seeds", "4", "--actions", "greedy", "--fidelities", "", "--scored-only",
                           "--protocol", "final:ema=0.9:checkpoints=2:soup=2", "--json", str(tmp_path / "o.json")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert only.returncode == 0, only.stderr[-2000:]
    scored = json.loads((tmp_path / "o.json").read_text())["final"]  # the protocol's own soups, no seed scored alone
    assert set(scored) == {"greedy+ema~soup2", "greedy+ema@4~soup2", "greedy+ema~soup2@avg2", "greedy+ema~soup2@mix2"}
    for rule, entry in scored.items():  # the same training and start states: the same returns
        np.testing.assert_array_equal(np.array(entry["returns"]), np.array(final[rule]["returns"]))
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "protocol_reliability.py"), "--quick",
                          "--scored-only", "--protocol", "final:ema=none:checkpoints=1"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "--scored-only" in bad.stderr and "Traceback" not in bad.stderr
    ema = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "protocol_reliability.py"), "--quick",
                          "--seeds", "4", "--actions", "greedy", "--fidelities", "", "--scored-only",
                          "--protocol", "final:ema=0.9:checkpoints=2", "--json", str(tmp_path / "e.json")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert ema.returncode == 0, ema.stderr[-2000:]
    scored = json.loads((tmp_path / "e.json").read_text())["final"]  # the averaged weights and their checkpoints
    assert set(scored) == {"greedy+ema", "greedy+ema@4", "greedy+ema@avg2", "greedy+ema@mix2"}
    np.testing.assert_array_equal(np.array(scored["greedy+ema@avg2"]["returns"]),
                                  np.array(final["greedy+ema@avg2"]["returns"]))
    probe = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "protocol_reliability.py"), "--quick",
                            "--fidelities", "", "--losses", "3", "--json", str(tmp_path / "p.json.gz")],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, probe.stderr[-2000:]  # a cost probe: only the first 3 losses are trained
    study = json.loads(gzip.decompress((tmp_path / "p.json.gz").read_bytes()))  # .gz: gzipped, as compare reads
    stored = (tmp_path / "p.json.gz").read_bytes()
    again = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "protocol_reliability.py"), "--quick",
                            "--json", str(tmp_path / "p.json.gz")], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode != 0 and "the file exists; give a new path" in again.stderr
    assert "Traceback" not in again.stderr and (tmp_path / "p.json.gz").read_bytes() == stored  # kept as it was
    assert len(study["names"]) == 3 and np.array(study["final"]["greedy"]["returns"]).shape[0] == 3
    few = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "protocol_reliability.py"), "--quick",
                          "--losses", "2"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert few.returncode != 0 and "--losses 2: give 3 to" in few.stderr and "Traceback" not in few.stderr


def test_soup_rule_names():
    pr = _module()
    assert pr.seeds_per_unit("greedy+ema~soup4") == 4 and pr.seeds_per_unit("greedy@avg4") == 1
    assert pr.base_rule("greedy+ema~soup4") == "greedy"
    assert pr.seeds_per_unit("greedy+ema~soup2@avg4") == 2 and pr.base_rule("greedy+ema~soup2@avg4") == "greedy"


def test_protocol_reliability_scores_seed_soups(tmp_path):
    env = {**os.environ, "SYMLOSS_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT),
           "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    script = str(ROOT / "benchmarks" / "protocol_reliability.py")
    bad = subprocess.run([sys.executable, script, "--quick", "--seeds", "4", "--soups", "3"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "--soups 3" in bad.stderr and "Traceback" not in bad.stderr
    out = subprocess.run([sys.executable, script, "--quick", "--seeds", "4", "--soups", "2", "--fidelities", "",
                          "--json", str(tmp_path / "study.json")], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    study = json.loads((tmp_path / "study.json").read_text())
    per_seed, soups = (np.array(study["final"][r]["returns"]) for r in ("greedy", "greedy~soup2"))
    assert per_seed.shape[1] == 4 and soups.shape[1] == 2 and soups.shape[::2] == per_seed.shape[::2]
    assert study["final"]["greedy~soup2"]["seeds_per_unit"] == 2
    assert "| greedy~soup2 |" in out.stdout


def test_random_maps_are_neither_flat_nor_dpo_where_the_data_lie():
    """Compared on the data's own u (far below 0 here), no map is flat there (it would never train) and none has
    DPO's shape m(u) = u up to constant and scale; without the data's u, such maps are drawn for this seed."""
    import torch

    from symloss.expr import compile_expr

    module = _module()
    u_range, u_data = (-550.0, -1e-4), torch.linspace(-300.0, -60.0, 2000)
    grid = torch.quantile(u_data.double(), torch.linspace(0.005, 0.995, 64, dtype=torch.float64))
    identity = (grid - grid.mean()) / grid.std()

    def degenerate(loss):
        values = compile_expr(loss.mirror, ["u"])(grid).detach().double()
        spread = values.std()
        if spread < max(1e-9, 1e-6 * float(values.abs().max())):
            return True
        return float(((values - values.mean()) / spread - identity).abs().max()) < 0.05

    maps = module.random_valid_maps(12, u_range, seed=54000, u_data=u_data)
    assert len(maps) == 12 and len({name for name, _ in maps}) == 12
    assert not any(degenerate(loss) for _, loss in maps)
    unchecked = module.random_valid_maps(12, u_range, seed=54000)
    assert any(degenerate(loss) for _, loss in unchecked)  # the run of seed 54000 drew such maps


def test_data_u_samples_are_what_the_ranges_are_read_from():
    import torch

    from symloss.train import data_u_ranges, data_u_samples

    torch.manual_seed(0)
    logps = {side: -torch.rand(50, 3) * 40 for side in ("chosen", "rejected")}
    masks = {side: torch.ones(50, 3) for side in logps}
    masks["rejected"][:, 2] = 0
    train = {**{f"ref_{s}_logps": v for s, v in logps.items()}, **{f"{s}_mask": m for s, m in masks.items()}}
    samples = data_u_samples(train, "sequence")
    torch.testing.assert_close(samples["mirror"], torch.cat([logps["chosen"].sum(1), logps["rejected"][:, :2].sum(1)]))
    torch.testing.assert_close(samples["imitation"], logps["chosen"].sum(1))
    assert data_u_samples(train, "token")["mirror"].numel() == 50 * 3 + 50 * 2
    ranges = data_u_ranges(train, "sequence")
    assert ranges["mirror"][0] < float(samples["mirror"].min()) and ranges["mirror"][1] <= -1e-4


def _layout(rng, mu, s, e, sd, per_seed=False):
    """Returns R[p, s, e] = mu_p + seed_s + state_e + (p x s) + (p x state) + residual, with the given sds; with
    ``per_seed`` each seed plays its own states (the state effects are drawn per seed)."""
    p = len(mu)
    shape_e = (p, s, e) if per_seed else (p, 1, e)
    state = rng.normal(0, 5.0, (1, s, e) if per_seed else (1, 1, e))
    return (mu[:, None, None] + rng.normal(0, 5.0, (1, s, 1)) + state + rng.normal(0, sd["ps"], (p, s, 1))
            + rng.normal(0, sd["pe"], shape_e) + rng.normal(0, sd["pse"], (p, s, e)))


def test_g_study_recovers_known_variance_components():
    pr = _module()
    rng = np.random.default_rng(3)
    sd = {"p": 3.0, "ps": 2.0, "pe": 1.5, "pse": 4.0}
    r = _layout(rng, rng.normal(0, sd["p"], 80), 30, 30, sd)
    v = pr.g_study(r)
    for key, value in sd.items():  # the seed and state main effects (sd 5) must not leak into any component
        assert abs(v[key] / value**2 - 1) < 0.25, (key, v[key], value**2)
    import pytest

    with pytest.raises(ValueError, match="needs >= 2"):
        pr.g_study(r[:, :1])


def test_g_coefficient_is_the_correlation_of_two_independent_runs():
    """Two runs of the same losses on fresh seeds and states correlate (Pearson) as G predicts; drawing the
    states per seed raises G when losses interact with start states."""
    pr = _module()
    rng = np.random.default_rng(4)
    sd = {"p": 1.0, "ps": 2.0, "pe": 3.0, "pse": 4.0}
    v = {k: x**2 for k, x in sd.items()}
    mu = rng.normal(0, sd["p"], 3000)
    for per_seed in (False, True):
        a, b = (_layout(rng, mu, 8, 16, sd, per_seed).mean((1, 2)) for _ in range(2))
        expected = pr.g_coefficient(v, 8, 16, per_seed=per_seed)
        assert abs(np.corrcoef(a, b)[0, 1] - expected) < 0.03, (per_seed, np.corrcoef(a, b)[0, 1], expected)
    assert pr.g_coefficient(v, 8, 16, per_seed=True) > pr.g_coefficient(v, 8, 16) + 0.1
    assert pr.g_coefficient(v, 16, 16) > pr.g_coefficient(v, 8, 16)  # more seeds, more reliable


def test_per_seed_states_give_each_seed_its_own_start_states(tmp_path):
    """Seed s of every loss plays reset(seed=eval_seed + s E + e): in --quick (seeds 7000, 7001, E = 2) the shared
    protocol from eval_seed + 7000 E gives seed 7000's returns; seed 7001 plays other states."""
    env = {**os.environ, "SYMLOSS_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT),
           "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    runs = {}
    for states, eval_seed in (("shared", 5 + 7000 * 2), ("per-seed", 5)):
        out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "protocol_reliability.py"), "--quick",
                              "--actions", "greedy", "--fidelities", "", "--protocol", "final:checkpoints=1:ema=0.9",
                              "--states", states, "--eval-seed", str(eval_seed),
                              "--json", str(tmp_path / f"{states}.json")],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        runs[states] = json.loads((tmp_path / f"{states}.json").read_text())
        assert "| greedy+ema |" in out.stdout and "G at 10 seeds: shared, per-seed states" in out.stdout
    shared, own = (np.array(runs[s]["final"]["greedy+ema"]["returns"]) for s in ("shared", "per-seed"))
    assert runs["per-seed"]["args"]["seed0"] == 7000
    np.testing.assert_array_equal(own[:, 0], shared[:, 0])
    assert not np.array_equal(own[:, 1], shared[:, 1])
    assert runs["per-seed"]["args"]["states"] == "per-seed"
    assert "g_study" in runs["per-seed"]["final"]["greedy+ema"]
