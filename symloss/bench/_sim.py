"""Batched MuJoCo simulation with Gymnasium's Hopper-v5 / Ant-v5 rules, without Gymnasium's per-step overhead.

``BatchSim(env, n)`` holds ``n`` ``MjData`` on one shared ``MjModel`` and steps them with direct
``mujoco.mj_step(model, data, nstep=frame_skip)`` calls; observations, rewards and terminations are
computed on stacked NumPy arrays ``[n, ...]``. The rules reproduce Gymnasium 1.x exactly (same actions
give the same returns; tested against a plain Gymnasium loop):

Hopper-v5 (frame_skip 4, dt = 0.008):
    r = (x' - x) / dt + 1[healthy] - 1e-3 * ||a||^2
    healthy = all(-100 < qpos[2:], qvel < 100) and z > 0.7 and |angle| < 0.2   (strict)
    obs = [qpos[1:], clip(qvel, -10, 10)]                                        (11)

Ant-v5 (frame_skip 5, dt = 0.05; TLA: the right back leg's two actuators receive 0):
    r = (x_torso' - x_torso) / dt + 1[healthy] - 0.5 * ||a||^2 - 5e-4 * ||clip(cfrc_ext, -1, 1)||^2
    healthy = all(finite(qpos, qvel)) and 0.2 <= z <= 1.0                        (inclusive)
    obs = [qpos[2:], qvel]                                                       (27)

Reset (Gymnasium's ``reset(seed=s)``): ``rng = numpy.random.default_rng(s)``;
``qpos = init_qpos + rng.uniform(-c, c, nq)``; Hopper ``qvel = init_qvel + rng.uniform(-c, c, nv)``
(c = 5e-3), Ant ``qvel = init_qvel + c * rng.standard_normal(nv)`` (c = 0.1).
Episodes end on termination or after ``max_steps`` (1000) steps.

``mujoco.mj_step`` releases the GIL, so ``threads`` worker threads step disjoint slices of the live
environments at once (2 threads: 1.99x on 2 cores). There are ``slices_per_thread`` slices per thread, taken
from a queue, so a thread that shares its core with another process takes fewer of them. The workers wait
passively (no spinning), so more threads than free cores cost little. Every environment has its own
``MjData`` and its own arithmetic, so the results do not depend on the number of threads or slices.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import mujoco
import numpy as np

from symloss.bench._envs import TLA_DISABLED_ACTUATORS, env_info, make_env

__all__ = ["BatchSim"]


class BatchSim:
    """``n`` independent copies of a benchmark environment, stepped together.

    Args:
        env: benchmark name (``hopper`` or ``tla``).
        n: number of environments.
        threads: worker threads stepping the environments (None: one per available core, at most 16).
        slices_per_thread: slices of the live environments per thread and step (each of at least 8
            environments); >= 1.
    """

    def __init__(self, env: str, n: int, *, threads: int | None = None, slices_per_thread: int = 4) -> None:
        if int(n) < 1:
            raise ValueError(f"n={n!r}: must be >= 1 (number of environments)")
        if threads is not None and int(threads) < 1:
            raise ValueError(f"threads={threads!r}: must be >= 1 (or None: one per available core, at most 16)")
        if int(slices_per_thread) < 1:
            raise ValueError(f"slices_per_thread={slices_per_thread!r}: must be >= 1")
        self.threads = int(threads) if threads is not None else min(16, len(os.sched_getaffinity(0)))
        self.slices_per_thread = int(slices_per_thread)
        self._pool: ThreadPoolExecutor | None = None
        self.info = env_info(env)
        gym_env = make_env(env).unwrapped
        self.model: mujoco.MjModel = gym_env.model
        self.frame_skip: int = int(gym_env.frame_skip)
        self.dt: float = float(self.model.opt.timestep * self.frame_skip)
        self.init_qpos = gym_env.init_qpos.copy()
        self.init_qvel = gym_env.init_qvel.copy()
        self.is_ant = self.info.gym_id.startswith("Ant")
        self.noise = 0.1 if self.is_ant else 5e-3
        self.n = int(n)
        self.datas = [mujoco.MjData(self.model) for _ in range(self.n)]
        nu = self.model.nu
        self.keep = np.array([i for i in range(nu) if not (self.is_ant and i in TLA_DISABLED_ACTUATORS)])
        self.qpos = np.zeros((self.n, self.model.nq))
        self.qvel = np.zeros((self.n, self.model.nv))
        self.steps = np.zeros(self.n, dtype=np.int64)
        self.done = np.ones(self.n, dtype=bool)

    def reset(self, seeds: np.ndarray | list[int]) -> np.ndarray:
        """Reset all environments, env ``i`` exactly as Gymnasium's ``reset(seed=seeds[i])``.

        Returns:
            observations ``[n, obs_dim]`` (float64).
        """
        seeds = np.asarray(seeds, dtype=np.int64)
        if seeds.shape != (self.n,):
            raise ValueError(f"seeds: shape {seeds.shape} must be ({self.n},), one seed per environment")
        m, c = self.model, self.noise
        for i, d in enumerate(self.datas):
            rng = np.random.default_rng(int(seeds[i]))
            mujoco.mj_resetData(m, d)
            d.qpos[:] = self.init_qpos + rng.uniform(low=-c, high=c, size=m.nq)
            if self.is_ant:
                d.qvel[:] = self.init_qvel + c * rng.standard_normal(m.nv)
            else:
                d.qvel[:] = self.init_qvel + rng.uniform(low=-c, high=c, size=m.nv)
            mujoco.mj_forward(m, d)
            self.qpos[i], self.qvel[i] = d.qpos, d.qvel
        self.steps[:] = 0
        self.done[:] = False
        return self._obs()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Apply ``actions [n, act_dim]`` to the environments that are not done.

        Returns:
            ``(obs [n, obs_dim], reward [n], done [n])``; reward is 0 for environments already done
            before this call, and ``done`` is termination or truncation at ``max_steps``.
        """
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != (self.n, self.info.act_dim):
            raise ValueError(f"actions: shape {actions.shape} must be ({self.n}, {self.info.act_dim})")
        live = np.flatnonzero(~self.done)
        x_before = self._x(live)
        cost_contact = np.zeros(self.n)
        n_parts = 1 if self.threads == 1 else min(self.threads * self.slices_per_thread, max(1, len(live) // 8))
        parts = [p for p in np.array_split(live, n_parts) if len(p)]
        if len(parts) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="batchsim")
            for future in [self._pool.submit(self._advance, p, actions, cost_contact) for p in parts]:
                future.result()
        else:
            self._advance(live, actions, cost_contact)
        healthy = self._healthy()
        ctrl_w = 0.5 if self.is_ant else 1e-3
        reward = (self._x(live) - x_before) / self.dt + healthy - ctrl_w * np.sum(np.square(actions), axis=1)
        reward = np.where(self.done, 0.0, reward - cost_contact)
        self.steps[live] += 1
        self.done |= ~healthy | (self.steps >= self.info.max_steps)
        return self._obs(), reward, self.done.copy()

    def _advance(self, envs: np.ndarray, actions: np.ndarray, cost_contact: np.ndarray) -> None:
        """Step the environments ``envs`` by one action (frame_skip physics steps); writes their rows only."""
        m, fs = self.model, self.frame_skip
        for i in envs:
            d = self.datas[i]
            d.ctrl[self.keep] = actions[i]
            mujoco.mj_step(m, d, nstep=fs)
            if self.is_ant:
                mujoco.mj_rnePostConstraint(m, d)
                cost_contact[i] = 5e-4 * np.sum(np.square(np.clip(d.cfrc_ext, -1.0, 1.0)))
            self.qpos[i], self.qvel[i] = d.qpos, d.qvel

    def close(self) -> None:
        """Stop the worker threads (also done when the simulator is garbage-collected)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __del__(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=False)

    def _x(self, live: np.ndarray) -> np.ndarray:
        """Forward position ``[n]``: Hopper's root x, Ant's torso x (body 1's ``xpos``)."""
        if not self.is_ant:
            return self.qpos[:, 0].copy()
        x = np.zeros(self.n)
        for i in live:
            x[i] = self.datas[i].xpos[1, 0]
        return x

    def _healthy(self) -> np.ndarray:
        """Gymnasium's ``is_healthy`` for every environment ``[n]`` (bool)."""
        if self.is_ant:
            finite = np.isfinite(self.qpos).all(1) & np.isfinite(self.qvel).all(1)
            z = self.qpos[:, 2]
            return finite & (z >= 0.2) & (z <= 1.0)
        state = np.concatenate([self.qpos[:, 2:], self.qvel], axis=1)
        z, angle = self.qpos[:, 1], self.qpos[:, 2]
        return (
            np.all((state > -100.0) & (state < 100.0), axis=1) & (z > 0.7) & (angle > -0.2) & (angle < 0.2)
        )

    def _obs(self) -> np.ndarray:
        """Observations ``[n, obs_dim]`` as Gymnasium builds them."""
        if self.is_ant:
            return np.concatenate([self.qpos[:, 2:], self.qvel], axis=1)
        return np.concatenate([self.qpos[:, 1:], np.clip(self.qvel, -10.0, 10.0)], axis=1)
