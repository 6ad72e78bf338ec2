"""DPO and ORPO on the MuJoCo preference benchmark: the table of paper_repro/RESULTS.md.

    python paper_repro/bench_baselines.py                 # both envs, clean / noisy / mixed, paper sizes
    python paper_repro/bench_baselines.py --quick         # small sizes, a smoke run (~1 minute)
    python paper_repro/bench_baselines.py --envs hopper --variants clean noisy mixed \
        --shared-reference --dpo-beta 1.0                 # the multi-seed study, at the final protocol

Training and scoring follow a named protocol of ``symloss.train.PROTOCOLS`` (``--protocol``, default
``final``: steps, pairs per step, lr, clipping, seeds, episodes, start states); ``--steps``, ``--lr``,
``--episodes`` and ``--seeds`` override its values. For each env x variant: build the dataset (cached), fit
the SFT reference (behaviour cloning on the chosen segments), train policies from it with DPO (beta
``--dpo-beta``, default 0.1, summed token log-probs) and ORPO (lambda 0.1, length-normalised log-odds + NLL
of the chosen) and evaluate each with ``symloss.bench.evaluate`` (greedy actions, the protocol's episodes
from reset seeds ``eval_seed + seed + e``).

{DPO, ORPO} x the protocol's seeds are trained at once by ``symloss.train.PopulationTrainer`` (seed s =
minibatch order; every member starts at the reference, all members evaluated on the same episodes); the
table shows mean ± std over seeds of each seed's mean return, and the gain over the SFT reference.
``--plain``: one seed, a plain single-policy Adam loop (``train_po``, the first table's loop); the table
shows the std over episodes. ``--shared-reference``: one SFT reference (and observation normalisation) per
env, fitted on the ``clean`` variant's chosen segments, starts every variant, so differences between
variants come from the preference pairs alone, not from a reference fitted on each variant's (possibly
flipped) chosen segments.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from symloss.bench import (
    REFERENCE_STEPS,
    build_dataset,
    evaluate,
    fit_reference,
    pair_tensors,
    policy_manifest,
    spec_for_dataset,
)
from symloss.bench import token_logps as _token_logps
from symloss.objectives import LogpBatch, MirrorLoss, dpo, orpo
from symloss.train import PROTOCOLS, PopulationTrainer, TrainConfig, prepare_data

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


@dataclass(frozen=True, kw_only=True)
class BaselineConfig:
    """Hyperparameters of the baseline runs."""

    protocol: TrainConfig = PROTOCOLS["final"]
    """How DPO / ORPO are trained and scored: steps, pairs per step, lr, clipping, seeds, episodes."""
    sft_steps: int = REFERENCE_STEPS
    """Adam steps of the SFT reference."""
    n_bins: int = 11
    """Bins per action dimension."""
    seed: int = 0
    """Seed of datasets, reference initialisation and evaluation (and of ``--plain`` minibatches)."""
    dpo_beta: float = 0.1
    """beta of DPO; > 0."""


def _logps_in_chunks(spec, params, obs, bins, chunk: int = 512) -> torch.Tensor:
    """``token_logps`` of one member over many segments, without building the whole graph."""
    with torch.no_grad():
        return torch.cat([_token_logps(spec, params, obs[i : i + chunk], bins[i : i + chunk])[0]
                          for i in range(0, obs.shape[0], chunk)])


def train_po(spec, ref: dict[str, torch.Tensor], data: dict[str, torch.Tensor], loss: MirrorLoss,
             cfg: BaselineConfig) -> tuple[dict[str, torch.Tensor], float]:
    """Train one policy from ``ref`` with ``loss`` (the protocol's steps, batch, lr and clipping); returns
    (params, mean train accuracy of the last 10%)."""
    protocol = cfg.protocol
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    ref_w = _logps_in_chunks(spec, ref, data["chosen_obs"], data["chosen_bins"])
    ref_l = _logps_in_chunks(spec, ref, data["rejected_obs"], data["rejected_bins"])
    params = {k: v.clone().requires_grad_() for k, v in ref.items()}
    opt = torch.optim.Adam(params.values(), lr=protocol.lr, betas=protocol.betas, eps=protocol.eps)
    n, accs = data["chosen_obs"].shape[0], []
    for step in range(protocol.steps):
        idx = torch.randint(0, n, (protocol.batch_size,), generator=gen)
        obs = torch.cat([data["chosen_obs"][idx], data["rejected_obs"][idx]])
        bins = torch.cat([data["chosen_bins"][idx], data["rejected_bins"][idx]])
        logp_w, logp_l = _token_logps(spec, params, obs, bins)[0].split(protocol.batch_size)
        batch = LogpBatch(logp_w, logp_l, data["chosen_mask"][idx], data["rejected_mask"][idx],
                          None if loss.reference_free else ref_w[idx],
                          None if loss.reference_free else ref_l[idx], progress=step / protocol.steps)
        out = loss(batch)
        opt.zero_grad()
        out.loss.mean().backward()
        if protocol.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(list(params.values()), protocol.max_grad_norm)
        opt.step()
        if step >= 0.9 * protocol.steps:
            accs.append(float(out.accuracy.float().mean()))
    return {k: v.detach() for k, v in params.items()}, sum(accs) / max(len(accs), 1)


def _losses(cfg: BaselineConfig) -> dict[str, MirrorLoss]:
    return {"dpo": dpo(beta=cfg.dpo_beta), "orpo": orpo(lam=0.1)}


def _label_acc(ds) -> float:
    return float(ds.with_format("numpy")["return_agrees"][:].mean())


def shared_reference(env: str, cfg: BaselineConfig, n_pairs: int | None) -> tuple:
    """``(spec, reference)`` fitted on the ``clean`` variant's chosen segments: one start for every variant."""
    clean = build_dataset(env, "clean", n_pairs=n_pairs, seed=cfg.seed)
    spec = spec_for_dataset(clean, n_bins=cfg.n_bins)
    return spec, fit_reference(spec, clean, steps=cfg.sft_steps, seed=cfg.seed)


def run_cell_seeds(env: str, variant: str, cfg: BaselineConfig, n_pairs: int | None, seeds: list[int],
                   shared: tuple | None = None) -> dict:
    """Dataset, SFT reference, {DPO, ORPO} x ``seeds`` trained at once; a row with mean ± std over seeds.

    ``shared``: ``(spec, reference)`` from :func:`shared_reference`; None fits the reference on this
    variant's chosen segments (as :func:`run_cell`).
    """
    start = time.time()
    ds = build_dataset(env, variant, n_pairs=n_pairs, seed=cfg.seed)
    if shared is None:
        spec = spec_for_dataset(ds, n_bins=cfg.n_bins)
        ref = fit_reference(spec, ds, steps=cfg.sft_steps, seed=cfg.seed)
    else:
        spec, ref = shared
    tcfg = dataclasses.replace(cfg.protocol, eval_seed=cfg.protocol.eval_seed + cfg.seed, fitness="return")
    losses = _losses(cfg)
    result = PopulationTrainer(tcfg).fit(list(losses.values()), prepare_data(ds, spec, ref, holdout_fraction=0.0),
                                         seeds=seeds)
    sft, sft_std = evaluate(spec, ref, env, episodes=tcfg.episodes, seed=tcfg.eval_seed)
    row: dict = {"env": env, "variant": variant, "pairs": ds.num_rows, "label_acc": _label_acc(ds),
                 "seeds": list(seeds), "shared_reference": shared is not None,
                 "sft": (float(sft[0]), float(sft_std[0]))}
    last = max(1, tcfg.steps // 10)
    for p, name in enumerate(losses):
        row[name] = (float(result.fitness[p]), float(result.fitness_std[p]))
        row[f"{name}_per_seed"] = [float(x) for x in result.fitness_per_seed[p]]
        row[f"{name}_train_acc"] = float(result.curves["accuracy"][p, :, -last:].nanmean())
    row["minutes"] = (time.time() - start) / 60
    print(json.dumps(row), flush=True)
    return row


def run_cell(env: str, variant: str, cfg: BaselineConfig, n_pairs: int | None) -> dict:
    """Dataset, SFT reference, DPO, ORPO for one env x variant; returns a row of the table."""
    start = time.time()
    ds = build_dataset(env, variant, n_pairs=n_pairs, seed=cfg.seed)
    spec = spec_for_dataset(ds, n_bins=cfg.n_bins)
    data = pair_tensors(ds, spec)
    ref = fit_reference(spec, ds, steps=cfg.sft_steps, seed=cfg.seed)
    policies = {"sft": ref}
    row: dict = {"env": env, "variant": variant, "pairs": ds.num_rows,
                 "label_acc": _label_acc(ds)}
    for name, loss in _losses(cfg).items():
        policies[name], row[f"{name}_train_acc"] = train_po(spec, ref, data, loss, cfg)
    for name, params in policies.items():
        mean, std = evaluate(spec, params, env, episodes=cfg.protocol.episodes,
                             seed=cfg.protocol.eval_seed + cfg.seed)
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
        lines.append(f"\n**{env}** behaviour policies (deterministic, mean return): {levels}\n")
        if "seeds" in rows[0]:
            lines += _seed_lines([r for r in rows if r["env"] == env])
            continue
        lines += ["| variant | pairs | labels agreeing with return | SFT reference | DPO | ORPO | DPO / ORPO train acc |",
                  "|---|---|---|---|---|---|---|"]
        for r in (r for r in rows if r["env"] == env):
            cells = " | ".join(f"{r[k][0]:.0f} ± {r[k][1]:.0f}" for k in ("sft", "dpo", "orpo"))
            lines.append(f"| {r['variant']} | {r['pairs']} | {r['label_acc']:.0%} | {cells} | "
                         f"{r['dpo_train_acc']:.2f} / {r['orpo_train_acc']:.2f} |")
    return "\n".join(lines)


def _seed_lines(rows: list[dict]) -> list[str]:
    """Rows of the multi-seed table: SFT (± episodes), DPO / ORPO mean ± std over seeds, gains, per seed."""
    lines = ["| variant | pairs | labels agreeing with return | SFT reference | DPO | ORPO | DPO - SFT | "
             "ORPO - SFT | DPO / ORPO train acc | DPO per seed | ORPO per seed |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = " | ".join(f"{r[k][0]:.0f} ± {r[k][1]:.0f}" for k in ("sft", "dpo", "orpo"))
        gains = " | ".join(f"{r[k][0] - r['sft'][0]:+.0f}" for k in ("dpo", "orpo"))
        per = " | ".join(" / ".join(f"{x:.0f}" for x in r[f"{k}_per_seed"]) for k in ("dpo", "orpo"))
        lines.append(f"| {r['variant']} | {r['pairs']} | {r['label_acc']:.0%} | {cells} | {gains} | "
                     f"{r['dpo_train_acc']:.2f} / {r['orpo_train_acc']:.2f} | {per} |")
    return lines


def _seed_list(text: str) -> list[int]:
    try:
        seeds = [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"--seeds {text!r}: expected distinct integers >= 0, e.g. 1,2,3")
    return seeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["hopper", "tla"])
    parser.add_argument("--variants", nargs="+", default=["clean", "noisy", "mixed", "noisy+mixed"])
    parser.add_argument("--quick", action="store_true", help="256 pairs, 200 steps, 300 SFT steps, 3 episodes")
    parser.add_argument("--protocol", default="final", choices=sorted(PROTOCOLS),
                        help="training protocol of symloss.train.PROTOCOLS (default: final)")
    parser.add_argument("--seeds", type=_seed_list, default=None,
                        help="e.g. 1,2,3: the training seeds (default: the protocol's)")
    parser.add_argument("--plain", action="store_true", help="one seed, the plain single-policy Adam loop")
    parser.add_argument("--shared-reference", action="store_true",
                        help="one SFT reference per env, fitted on the clean variant's chosen segments")
    parser.add_argument("--steps", type=int, default=None, help="DPO / ORPO Adam steps (default: the protocol's)")
    parser.add_argument("--lr", type=float, default=None, help="DPO / ORPO learning rate (default: the protocol's)")
    parser.add_argument("--dpo-beta", type=float, default=None, help="DPO beta (default 0.1)")
    parser.add_argument("--episodes", type=int, default=None, help="evaluation episodes (default: the protocol's)")
    parser.add_argument("--write", action="store_true", help="append the table to paper_repro/RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    quick = {"steps": 200, "episodes": 3} if args.quick else {}
    given = {k: v for k, v in (("steps", args.steps), ("lr", args.lr), ("episodes", args.episodes)) if v is not None}
    cfg = BaselineConfig(protocol=TrainConfig.preset(args.protocol, **{**quick, **given}),
                         **({"sft_steps": 300} if args.quick else {}),
                         **({} if args.dpo_beta is None else {"dpo_beta": args.dpo_beta}))
    n_pairs = 256 if args.quick else None
    rows, configs = [], {}
    for env in args.envs:  # the protocol with the environment's own fields (symloss.train.ENV_PROTOCOL)
        cfg = configs[env] = dataclasses.replace(cfg, protocol=TrainConfig.preset(args.protocol, env=env,
                                                                                   **{**quick, **given}))
        shared = shared_reference(env, cfg, n_pairs) if args.shared_reference else None
        for variant in args.variants:
            if args.plain:
                rows.append(run_cell(env, variant, cfg, n_pairs))
            else:
                rows.append(run_cell_seeds(env, variant, cfg, n_pairs, args.seeds or cfg.protocol.seed_list, shared))
    text = table(rows)
    print(text)
    if args.write:
        head = "# paper_repro results\n" if not RESULTS.exists() else ""
        with RESULTS.open("a") as f:
            f.write(f"{head}\n## MuJoCo benchmark baselines ({datetime.date.today().isoformat()})\n\n"
                    f"Command: `python paper_repro/bench_baselines.py {' '.join(sys.argv[1:])}`; "
                    f"config: {configs}; seeds: {args.seeds or cfg.protocol.seed_list}; shared reference: {args.shared_reference}; "
                    f"2-core CPU, no GPU.\n{text}\n")


if __name__ == "__main__":
    main()
