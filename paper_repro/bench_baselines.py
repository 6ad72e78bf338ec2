"""DPO and ORPO on the MuJoCo preference benchmark: the table of paper_repro/RESULTS.md.

    python paper_repro/bench_baselines.py                 # both envs, clean / noisy / mixed, paper sizes
    python paper_repro/bench_baselines.py --quick         # small sizes, a smoke run (~1 minute)

For each env x variant: build the dataset (cached), fit the SFT reference (behaviour cloning on the chosen
segments), train one policy from it with DPO (beta 0.1, summed token log-probs) and one with ORPO
(lambda 0.1, length-normalised log-odds + NLL of the chosen) by a plain single-policy Adam loop, and
evaluate each with ``symloss.bench.evaluate`` (greedy actions, ``--episodes`` episodes). One seed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from symloss.bench import (
    build_dataset,
    evaluate,
    fit_reference,
    pair_tensors,
    policy_manifest,
    spec_for_dataset,
)
from symloss.bench import token_logps as _token_logps
from symloss.objectives import LogpBatch, MirrorLoss, dpo, orpo

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


@dataclass(frozen=True, kw_only=True)
class BaselineConfig:
    """Hyperparameters of the baseline runs (one seed)."""

    steps: int = 1500
    """Adam steps of DPO / ORPO."""
    sft_steps: int = 1500
    """Adam steps of the SFT reference."""
    batch_size: int = 64
    """Pairs per step."""
    lr: float = 3e-4
    """Adam learning rate of DPO / ORPO."""
    n_bins: int = 11
    """Bins per action dimension."""
    episodes: int = 10
    """Evaluation episodes per policy."""
    seed: int = 0
    """Seed of datasets, initialisation, minibatches and evaluation."""


def _logps_in_chunks(spec, params, obs, bins, chunk: int = 512) -> torch.Tensor:
    """``token_logps`` of one member over many segments, without building the whole graph."""
    with torch.no_grad():
        return torch.cat([_token_logps(spec, params, obs[i : i + chunk], bins[i : i + chunk])[0]
                          for i in range(0, obs.shape[0], chunk)])


def train_po(spec, ref: dict[str, torch.Tensor], data: dict[str, torch.Tensor], loss: MirrorLoss,
             cfg: BaselineConfig) -> tuple[dict[str, torch.Tensor], float]:
    """Train one policy from ``ref`` with ``loss``; returns (params, mean train accuracy of the last 10%)."""
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    ref_w = _logps_in_chunks(spec, ref, data["chosen_obs"], data["chosen_bins"])
    ref_l = _logps_in_chunks(spec, ref, data["rejected_obs"], data["rejected_bins"])
    params = {k: v.clone().requires_grad_() for k, v in ref.items()}
    opt = torch.optim.Adam(params.values(), lr=cfg.lr)
    n, accs = data["chosen_obs"].shape[0], []
    for step in range(cfg.steps):
        idx = torch.randint(0, n, (cfg.batch_size,), generator=gen)
        obs = torch.cat([data["chosen_obs"][idx], data["rejected_obs"][idx]])
        bins = torch.cat([data["chosen_bins"][idx], data["rejected_bins"][idx]])
        logp_w, logp_l = _token_logps(spec, params, obs, bins)[0].split(cfg.batch_size)
        batch = LogpBatch(logp_w, logp_l, data["chosen_mask"][idx], data["rejected_mask"][idx],
                          None if loss.reference_free else ref_w[idx],
                          None if loss.reference_free else ref_l[idx], progress=step / cfg.steps)
        out = loss(batch)
        opt.zero_grad()
        out.loss.mean().backward()
        opt.step()
        if step >= 0.9 * cfg.steps:
            accs.append(float(out.accuracy.float().mean()))
    return {k: v.detach() for k, v in params.items()}, sum(accs) / max(len(accs), 1)


def run_cell(env: str, variant: str, cfg: BaselineConfig, n_pairs: int | None) -> dict:
    """Dataset, SFT reference, DPO, ORPO for one env x variant; returns a row of the table."""
    start = time.time()
    ds = build_dataset(env, variant, n_pairs=n_pairs, seed=cfg.seed)
    spec = spec_for_dataset(ds, n_bins=cfg.n_bins)
    data = pair_tensors(ds, spec)
    ref = fit_reference(spec, ds, steps=cfg.sft_steps, seed=cfg.seed)
    policies = {"sft": ref}
    row: dict = {"env": env, "variant": variant, "pairs": ds.num_rows,
                 "label_acc": float(ds.with_format("numpy")["return_agrees"][:].mean())}
    for name, loss in (("dpo", dpo(beta=0.1)), ("orpo", orpo(lam=0.1))):
        policies[name], row[f"{name}_train_acc"] = train_po(spec, ref, data, loss, cfg)
    for name, params in policies.items():
        mean, std = evaluate(spec, params, env, episodes=cfg.episodes, seed=10_000 + cfg.seed)
        row[name] = (float(mean[0]), float(std[0]))
    row["minutes"] = (time.time() - start) / 60
    print(json.dumps(row), flush=True)
    return row


def table(rows: list[dict]) -> str:
    """Markdown table of the rows plus each env's behaviour-policy returns."""
    manifest = policy_manifest()
    lines = []
    for env in dict.fromkeys(r["env"] for r in rows):
        levels = ", ".join(f"{lv} {e['mean_return']:.0f}" for lv, e in manifest[env].items())
        lines += [f"\n**{env}** behaviour policies (deterministic, mean return): {levels}\n",
                  "| variant | pairs | labels agreeing with return | SFT reference | DPO | ORPO | DPO / ORPO train acc |",
                  "|---|---|---|---|---|---|---|"]
        for r in (r for r in rows if r["env"] == env):
            cells = " | ".join(f"{r[k][0]:.0f} ± {r[k][1]:.0f}" for k in ("sft", "dpo", "orpo"))
            lines.append(f"| {r['variant']} | {r['pairs']} | {r['label_acc']:.0%} | {cells} | "
                         f"{r['dpo_train_acc']:.2f} / {r['orpo_train_acc']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["hopper", "tla"])
    parser.add_argument("--variants", nargs="+", default=["clean", "noisy", "mixed", "noisy+mixed"])
    parser.add_argument("--quick", action="store_true", help="256 pairs, 200 steps, 3 episodes")
    parser.add_argument("--write", action="store_true", help="append the table to paper_repro/RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = BaselineConfig(steps=200, sft_steps=300, episodes=3) if args.quick else BaselineConfig()
    n_pairs = 256 if args.quick else None
    rows = [run_cell(env, variant, cfg, n_pairs) for env in args.envs for variant in args.variants]
    text = table(rows)
    print(text)
    if args.write:
        head = "# paper_repro results\n" if not RESULTS.exists() else ""
        with RESULTS.open("a") as f:
            f.write(f"{head}\n## MuJoCo benchmark baselines ({datetime.date.today().isoformat()})\n\n"
                    f"Command: `python paper_repro/bench_baselines.py --write`; config: {cfg}; "
                    f"2-core CPU, no GPU.\n{text}\n")


if __name__ == "__main__":
    main()
