"""The batched simulator and evaluator against plain Gymnasium loops; env-name errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from symloss.bench import BatchSim, TokenPolicySpec, act, episode_returns, evaluate, init_params, make_env


def _gym_return(env: str, seed: int, policy) -> tuple[float, int]:
    e = make_env(env)
    obs, _ = e.reset(seed=seed)
    total, steps, done = 0.0, 0, False
    while not done:
        obs, r, term, trunc, _ = e.step(policy(obs, steps))
        total, steps, done = total + float(r), steps + 1, term or trunc
    e.close()
    return total, steps


@pytest.mark.parametrize("env", ["hopper", "tla"])
def test_batchsim_matches_gymnasium_on_open_loop_actions(env):
    n, horizon = 3, 200
    sim = BatchSim(env, n)
    actions = np.random.default_rng(0).uniform(-0.4, 0.4, size=(horizon, n, sim.info.act_dim))
    sim.reset(np.arange(n) + 5)
    total = np.zeros(n)
    for t in range(horizon):
        total += sim.step(actions[t])[1]
        if sim.done.all():
            break
    for i in range(n):
        e = make_env(env)
        e.reset(seed=5 + i)
        ref = 0.0
        for t in range(int(sim.steps[i])):
            _, r, term, _, _ = e.step(actions[t, i])
            ref += float(r)
        assert term == (sim.steps[i] < horizon and bool(sim.done[i]))
        assert total[i] == pytest.approx(ref, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("env", ["hopper", "tla"])
def test_threads_do_not_change_results(env):
    """Slices of environments stepped by worker threads give exactly the single-thread trajectories."""
    n, horizon = 40, 60
    runs = []
    for threads, slices in ((1, 1), (3, 1), (3, 4)):
        sim = BatchSim(env, n, threads=threads, slices_per_thread=slices)
        actions = np.random.default_rng(1).uniform(-1, 1, size=(horizon, n, sim.info.act_dim))
        obs, rewards = [sim.reset(np.arange(n))], []
        for t in range(horizon):
            o, r, _ = sim.step(actions[t])
            obs.append(o)
            rewards.append(r)
        runs.append((np.stack(obs), np.stack(rewards), sim.steps.copy()))
        assert (sim._pool is not None) == (threads > 1)
        sim.close()
    for run in runs[1:]:
        for a, b in zip(runs[0], run):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="threads=0"):
        BatchSim(env, 2, threads=0)
    with pytest.raises(ValueError, match="slices_per_thread=0"):
        BatchSim(env, 2, slices_per_thread=0)


def _returns_every_member_every_step(spec, params, episodes):
    """Evaluation as before one-batch scoring: a forward of every member at every step, one slice per thread."""
    n = params["W0"].shape[0]
    sim = BatchSim("hopper", n * episodes, threads=1, slices_per_thread=1)
    obs, total = sim.reset(np.tile(np.arange(episodes), n)), np.zeros(n * episodes)
    while not sim.done.all():
        a = act(spec, params, torch.from_numpy(obs).float().view(n, episodes, -1)).reshape(n * episodes, -1)
        obs, reward, _ = sim.step(a.double().numpy())
        total += reward
    return total.reshape(n, episodes), sim.steps.reshape(n, episodes)


def test_one_batch_gives_the_chunked_returns_to_the_bit():
    """All members in one simulator batch = chunks of members = the loop that runs every member every step."""
    spec = TokenPolicySpec(obs_dim=11, act_dim=3, n_bins=7)
    params = init_params(spec, 6, torch.Generator().manual_seed(4))
    params = {k: v * 30 if k.startswith("W") else v for k, v in params.items()}  # varied episode lengths
    whole, lengths = episode_returns(spec, params, "hopper", episodes=3, return_lengths=True, threads=2)
    chunks = [episode_returns(spec, {k: v[lo:lo + 4] for k, v in params.items()}, "hopper", episodes=3, threads=1)
              for lo in (0, 4)]
    before, before_lengths = _returns_every_member_every_step(spec, params, 3)
    assert len(set(lengths.ravel().tolist())) > 3  # members finish at different steps (so some are skipped)
    np.testing.assert_array_equal(whole, np.concatenate(chunks))
    np.testing.assert_array_equal(whole, before)
    np.testing.assert_array_equal(lengths, before_lengths)


def test_evaluator_matches_plain_gymnasium_loop():
    spec = TokenPolicySpec(obs_dim=11, act_dim=3, n_bins=7)
    params = init_params(spec, 2, torch.Generator().manual_seed(3), dtype=torch.float64)
    params = {k: v * 30 if k.startswith("W") else v for k, v in params.items()}  # non-trivial actions
    returns = episode_returns(spec, params, "hopper", episodes=2, seed=11)
    for n in range(2):
        member = {k: v[n : n + 1] for k, v in params.items()}

        def policy(obs, _t, member=member):
            o = torch.from_numpy(obs).view(1, 1, -1)
            return act(spec, member, o)[0, 0].double().numpy()

        for e in range(2):
            ref, _ = _gym_return("hopper", 11 + e, policy)
            assert returns[n, e] == pytest.approx(ref, rel=1e-9)


def test_evaluate_is_deterministic_and_shaped():
    spec = TokenPolicySpec(obs_dim=27, act_dim=6, n_bins=5)
    params = init_params(spec, 3, torch.Generator().manual_seed(0))
    sim_steps = evaluate(spec, params, "tla", episodes=1, seed=1)
    again = evaluate(spec, params, "tla", episodes=1, seed=1)
    assert sim_steps[0].shape == (3,) and sim_steps[1].shape == (3,)
    assert torch.equal(sim_steps[0], again[0])


def test_unknown_env_suggests_a_name():
    with pytest.raises(ValueError, match=r"env='hoppr'.*did you mean 'hopper'"):
        BatchSim("hoppr", 2)
    with pytest.raises(ValueError, match="n=0"):
        BatchSim("hopper", 0)


def test_evaluate_rejects_mismatched_spec():
    spec = TokenPolicySpec(obs_dim=11, act_dim=3)
    params = init_params(spec, 1, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="do not match env='tla'"):
        evaluate(spec, params, "tla")
