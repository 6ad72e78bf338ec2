"""Benchmark environments: names, construction and the three-legged Ant ("TLA").

Two environments, by name:

- ``hopper``: Gymnasium ``Hopper-v5`` (obs 11, act 3, 1000-step episodes).
- ``tla``: three-legged Ant, our reading of the paper's "TLA". Gymnasium ``Ant-v5`` with
  ``include_cfrc_ext_in_observation=False`` (obs 27, i.e. no contact forces) and the right back leg
  (``right_back_leg``, actuators ``hip_4`` and ``ankle_4``, indices 0 and 1 of Ant's 8) disabled:
  the policy controls the remaining 6 actuators, and the two disabled ones always receive 0.
  Reward and termination are Ant-v5's unchanged (the zero actions cost nothing).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

__all__ = ["ENV_NAMES", "EnvInfo", "env_info", "make_env", "check_env_name", "TLA_DISABLED_ACTUATORS"]

ENV_NAMES: tuple[str, ...] = ("hopper", "tla")
TLA_DISABLED_ACTUATORS: tuple[int, ...] = (0, 1)
"""Indices of Ant-v5's actuators that TLA forces to 0: ``hip_4`` and ``ankle_4`` (right back leg)."""


@dataclass(frozen=True, kw_only=True)
class EnvInfo:
    """Static facts about a benchmark environment."""

    name: str
    """Benchmark name (``hopper`` or ``tla``)."""
    gym_id: str
    """Gymnasium id of the underlying environment."""
    obs_dim: int
    """Observation size."""
    act_dim: int
    """Action size seen by the policy (TLA: 6, Ant's 8 minus the disabled leg)."""
    max_steps: int = 1000
    """Episode length limit (Gymnasium's TimeLimit)."""
    gym_kwargs: tuple[tuple[str, object], ...] = ()
    """Keyword arguments passed to ``gymnasium.make``."""


_INFOS: dict[str, EnvInfo] = {
    "hopper": EnvInfo(name="hopper", gym_id="Hopper-v5", obs_dim=11, act_dim=3),
    "tla": EnvInfo(
        name="tla",
        gym_id="Ant-v5",
        obs_dim=27,
        act_dim=6,
        gym_kwargs=(("include_cfrc_ext_in_observation", False),),
    ),
}


def check_env_name(env: str) -> str:
    """Return ``env`` if it names a benchmark environment, else raise ``ValueError`` with a suggestion."""
    if env in _INFOS:
        return env
    close = difflib.get_close_matches(str(env), ENV_NAMES, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"env={env!r}: unknown environment; accepted: {', '.join(ENV_NAMES)}{hint}")


def env_info(env: str) -> EnvInfo:
    """Static facts (dimensions, Gymnasium id) for benchmark environment ``env``."""
    return _INFOS[check_env_name(env)]


class ThreeLeggedAnt(gym.ActionWrapper):
    """Ant with the right back leg disabled: a 6-dim action is expanded to Ant's 8 with zeros."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._keep = np.array([i for i in range(8) if i not in TLA_DISABLED_ACTUATORS])
        low, high = env.action_space.low[self._keep], env.action_space.high[self._keep]
        self.action_space = gym.spaces.Box(low=low, high=high, dtype=env.action_space.dtype)

    def action(self, action: np.ndarray) -> np.ndarray:
        """Insert zeros for the disabled actuators: [6] -> [8]."""
        full = np.zeros(8, dtype=np.float64)
        full[self._keep] = action
        return full


def make_env(env: str, **kwargs: object) -> gym.Env:
    """Create the Gymnasium environment for benchmark ``env`` (extra kwargs go to ``gymnasium.make``)."""
    info = env_info(env)
    base = gym.make(info.gym_id, **dict(info.gym_kwargs), **kwargs)
    return ThreeLeggedAnt(base) if info.name == "tla" else base
