"""Train the benchmark's behaviour policies with Stable-Baselines3 PPO and export graded checkpoints.

Rerun with ``python paper_repro/train_behaviour_policies.py`` (needs the ``sb3`` extra). For each
environment (``hopper``, ``tla``) PPO (SB3 defaults: 2x64 tanh MLP, VecNormalize on observations and
rewards) trains for ``--steps`` timesteps or ``--minutes`` of wall time, whichever comes first. Every
``--snapshot-every`` steps the actor and the observation statistics are frozen and scored by
deterministic rollouts (``--eval-episodes`` episodes). Graded levels are then chosen by return:

- ``random``: the untrained initial policy (step 0);
- ``expert``: the best snapshot;
- ``medium`` / ``weak``: the snapshots closest to 50% / 20% of the expert's return.

Each level is written to ``symloss/bench/policies/{env}_{level}.npz`` (float32 arrays ``W0, b0, W1, b1,
W2, b2`` with ``W`` as ``[in, out]``, ``log_std``, ``obs_mean``, ``obs_var``, scalars ``clip_obs``,
``obs_eps``) and its measured return to ``symloss/bench/policies/manifest.json``. The action of such a
policy is ``clip(W2^T tanh(W1^T tanh(W0^T o + b0) + b1) + b2, -1, 1)`` with
``o = clip((obs - obs_mean) / sqrt(obs_var + obs_eps), -clip_obs, clip_obs)``; loading needs only NumPy.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from symloss.bench import make_env

POLICY_DIR = Path(__file__).resolve().parents[1] / "symloss" / "bench" / "policies"
LEVEL_FRACTIONS = {"weak": 0.2, "medium": 0.5}


def snapshot(model, vecnorm) -> dict[str, np.ndarray]:
    """Freeze PPO's actor and VecNormalize's observation statistics into plain float32 arrays."""
    pi = model.policy
    lin = [m for m in pi.mlp_extractor.policy_net if isinstance(m, torch.nn.Linear)] + [pi.action_net]
    out: dict[str, np.ndarray] = {}
    for i, layer in enumerate(lin):
        out[f"W{i}"] = layer.weight.detach().numpy().T.astype(np.float32).copy()
        out[f"b{i}"] = layer.bias.detach().numpy().astype(np.float32).copy()
    out["log_std"] = pi.log_std.detach().numpy().astype(np.float32).copy()
    out["obs_mean"] = vecnorm.obs_rms.mean.astype(np.float32).copy()
    out["obs_var"] = vecnorm.obs_rms.var.astype(np.float32).copy()
    out["clip_obs"] = np.float32(vecnorm.clip_obs)
    out["obs_eps"] = np.float32(vecnorm.epsilon)
    return out


def act(p: dict[str, np.ndarray], obs: np.ndarray) -> np.ndarray:
    """Deterministic action of an exported policy (the formula in the module docstring)."""
    o = np.clip((obs - p["obs_mean"]) / np.sqrt(p["obs_var"] + p["obs_eps"]), -p["clip_obs"], p["clip_obs"])
    h = np.tanh(o @ p["W0"] + p["b0"])
    h = np.tanh(h @ p["W1"] + p["b1"])
    return np.clip(h @ p["W2"] + p["b2"], -1.0, 1.0)


def evaluate(env_name: str, p: dict[str, np.ndarray], episodes: int, seed: int) -> tuple[float, float]:
    """Mean and std of undiscounted returns over ``episodes`` deterministic episodes."""
    env = make_env(env_name)
    returns = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        total, done = 0.0, False
        while not done:
            obs, r, term, trunc, _ = env.step(act(p, obs))
            total += float(r)
            done = term or trunc
        returns.append(total)
    env.close()
    return float(np.mean(returns)), float(np.std(returns))


def choose_levels(scored: list[tuple[int, float, Path]]) -> dict[str, tuple[int, float, Path]]:
    """Pick random (step 0), expert (best) and weak/medium (closest to a fraction of expert)."""
    levels = {"random": scored[0], "expert": max(scored, key=lambda s: s[1])}
    rand_ret, best_ret = levels["random"][1], levels["expert"][1]
    for name, frac in LEVEL_FRACTIONS.items():
        target = rand_ret + frac * (best_ret - rand_ret)
        levels[name] = min(scored, key=lambda s: abs(s[1] - target))
    return levels


def export(env_name: str, scored, episodes: int, final: bool) -> None:
    """Copy the chosen snapshots into the package and update the manifest."""
    POLICY_DIR.mkdir(parents=True, exist_ok=True)
    manifest_path = POLICY_DIR / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    entry = {}
    for level, (step, ret, path) in choose_levels(scored).items():
        p = dict(np.load(path))
        mean, std = evaluate(env_name, p, episodes, seed=10_000) if final else (ret, float("nan"))
        np.savez(POLICY_DIR / f"{env_name}_{level}.npz", **p)
        entry[level] = {"file": f"{env_name}_{level}.npz", "timesteps": step, "mean_return": round(mean, 2),
                        "std_return": None if np.isnan(std) else round(std, 2),
                        "eval_episodes": episodes if final else None, "final": final}
    order = ["random", "weak", "medium", "expert"]
    manifest[env_name] = {k: entry[k] for k in order}
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")


def train(env_name: str, args: argparse.Namespace) -> None:
    """Train PPO on ``env_name`` with periodic snapshots; export levels as training goes."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    work = Path(args.workdir) / env_name
    work.mkdir(parents=True, exist_ok=True)
    venv = DummyVecEnv([lambda i=i: make_env(env_name) for i in range(args.n_envs)])
    venv.seed(args.seed)
    venv = VecNormalize(venv, norm_obs=True, norm_reward=True, clip_obs=10.0)
    model = PPO("MlpPolicy", venv, n_steps=2048 // args.n_envs, batch_size=64, n_epochs=10,
                learning_rate=3e-4, gae_lambda=0.95, gamma=0.99, seed=args.seed, verbose=0)
    # Linear decay over the planned total (SB3's own schedule restarts at every ``learn`` call).
    model.lr_schedule = lambda _: 3e-4 * max(0.05, 1.0 - model.num_timesteps / args.steps)
    start, scored = time.time(), []
    while True:
        step = model.num_timesteps
        path = work / f"step_{step:08d}.npz"
        np.savez(path, **snapshot(model, venv))
        ret, _ = evaluate(env_name, dict(np.load(path)), args.eval_episodes, seed=1_000)
        scored.append((step, ret, path))
        mins = (time.time() - start) / 60
        print(f"[{env_name}] step={step} return={ret:.1f} minutes={mins:.1f}", flush=True)
        export(env_name, scored, args.eval_episodes, final=False)
        if step >= args.steps or mins >= args.minutes:
            break
        model.learn(args.snapshot_every, reset_num_timesteps=False)
    export(env_name, scored, args.final_episodes, final=True)
    print(f"[{env_name}] exported {json.loads((POLICY_DIR / 'manifest.json').read_text())[env_name]}")


def rescore(env_name: str, args: argparse.Namespace) -> None:
    """Re-score the snapshots already in ``--workdir`` and export the final levels (no training)."""
    paths = sorted((Path(args.workdir) / env_name).glob("step_*.npz"))
    if not paths:
        raise FileNotFoundError(f"--workdir {args.workdir}: no snapshots for {env_name}")
    scored = []
    for path in paths:
        ret, _ = evaluate(env_name, dict(np.load(path)), args.eval_episodes, seed=1_000)
        scored.append((int(path.stem.split("_")[1]), ret, path))
        print(f"[{env_name}] step={scored[-1][0]} return={ret:.1f}", flush=True)
    export(env_name, scored, args.final_episodes, final=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["hopper", "tla"])
    parser.add_argument("--steps", type=int, default=1_500_000, help="max PPO timesteps per env")
    parser.add_argument("--minutes", type=float, default=28.0, help="max wall minutes per env")
    parser.add_argument("--snapshot-every", type=int, default=40_960)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--final-episodes", type=int, default=20)
    parser.add_argument("--n-envs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default="/tmp/symloss_behaviour")
    parser.add_argument("--export-only", action="store_true", help="re-score existing snapshots, no training")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for env_name in args.envs:
        (rescore if args.export_only else train)(env_name, args)


if __name__ == "__main__":
    main()
