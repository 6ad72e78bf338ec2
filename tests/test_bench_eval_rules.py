"""Action rules of the evaluation (greedy, tempered mean, sampled) and the normalised score."""

import numpy as np
import pytest
import torch

from symloss import bench
from symloss.bench import TokenPolicySpec, act, episode_returns, init_params, normalised_score, score_anchors
from symloss.train import TrainConfig

SPEC = TokenPolicySpec(obs_dim=11, act_dim=3, n_bins=11, hidden=(16,))


def _params(n: int, seed: int = 0, scale: float = 60.0) -> dict[str, torch.Tensor]:
    params = init_params(SPEC, n, torch.Generator().manual_seed(seed))
    last = f"W{SPEC.n_layers - 1}"
    params[last] = params[last] * scale  # away from uniform: distinct maxima, episodes that differ
    return params


def test_mean_action_is_the_expected_bin_centre_and_tends_to_greedy():
    params = _params(3)
    obs = torch.randn(3, 4, 11, generator=torch.Generator().manual_seed(1))
    greedy = act(SPEC, params, obs, action="greedy")
    cold = act(SPEC, params, obs, action="mean", temperature=1e-4)
    logits = bench.act.__globals__["_logits_fm"](SPEC, params, obs).permute(0, 3, 1, 2)
    top2 = logits.topk(2, -1).values
    clear = (top2[..., 0] - top2[..., 1]) > 0.01  # no near-tie between the two best bins
    assert clear.float().mean() > 0.8
    torch.testing.assert_close(cold[clear], greedy[clear], atol=1e-4, rtol=0)
    warm = act(SPEC, params, obs, action="mean", temperature=1.0)
    assert not torch.allclose(warm, greedy)
    assert (warm >= -1).all() and (warm <= 1).all()  # a convex combination of the centres


def test_sampling_by_inverse_cdf_follows_the_policy():
    params = _params(1, scale=5.0)
    obs = torch.zeros(1, 1, 11)
    draws = torch.stack([act(SPEC, params, obs, action="sample", uniform=torch.full((1, 1, 3), u))
                         for u in np.linspace(0.0005, 0.9995, 2000)])[:, 0, 0, 0]
    centres = SPEC.centres()
    counts = torch.stack([(draws == c).float().mean() for c in centres])
    probs = torch.softmax(bench.act.__globals__["_logits_fm"](SPEC, params, obs).permute(0, 3, 1, 2), -1)[0, 0, 0]
    torch.testing.assert_close(counts, probs.float(), atol=2e-3, rtol=0)


@pytest.mark.parametrize("action", ["greedy", "mean", "sample"])
def test_returns_are_deterministic_for_a_seed_and_independent_of_the_other_members(action):
    params = _params(3)
    together = episode_returns(SPEC, params, "hopper", episodes=3, seed=11, action=action, threads=1)
    again = episode_returns(SPEC, params, "hopper", episodes=3, seed=11, action=action, threads=1)
    np.testing.assert_array_equal(together, again)
    alone = episode_returns(SPEC, {k: v[1:2] for k, v in params.items()}, "hopper", episodes=3, seed=11,
                            action=action, threads=1)
    if action == "mean":  # a float32 sum over bins: batch shape may move the last bit, nothing more
        np.testing.assert_allclose(alone[0], together[1], rtol=1e-5)
    else:
        np.testing.assert_array_equal(alone[0], together[1])


def test_sampled_returns_depend_on_the_seed_and_differ_from_greedy():
    params = _params(2, scale=3.0)
    a = episode_returns(SPEC, params, "hopper", episodes=2, seed=0, action="sample", threads=1)
    b = episode_returns(SPEC, params, "hopper", episodes=2, seed=0, action="sample", threads=1)
    greedy = episode_returns(SPEC, params, "hopper", episodes=2, seed=0, action="greedy", threads=1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, greedy)
    # another seed: other start states and other draws
    assert not np.array_equal(a, episode_returns(SPEC, params, "hopper", episodes=2, seed=5, action="sample",
                                                 threads=1))


def test_bad_action_or_temperature_is_refused():
    with pytest.raises(ValueError, match=r"action='best': must be one of \['greedy', 'mean', 'sample'\]"):
        episode_returns(SPEC, _params(1), "hopper", episodes=1, action="best")
    with pytest.raises(ValueError, match="temperature=0: must be a finite number > 0"):
        episode_returns(SPEC, _params(1), "hopper", episodes=1, action="mean", temperature=0)
    with pytest.raises(ValueError, match="action='best': must be one of"):
        TrainConfig(action="best")
    with pytest.raises(ValueError, match=r"temperature=-1: must be a finite number > 0"):
        TrainConfig(temperature=-1)


def test_normalised_score_maps_random_to_0_and_expert_to_100():
    for env in ("hopper", "tla"):
        low, high = score_anchors(env)
        assert low < high
        np.testing.assert_allclose(normalised_score(env, [low, high, (low + high) / 2]), [0.0, 100.0, 50.0])
    assert normalised_score("hopper", 95.0) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="hoper"):
        normalised_score("hoper", 1.0)


def test_per_seed_starts_give_each_training_seed_its_own_block_of_states():
    starts = bench.per_seed_starts(100, [0, 1, 0, 1, 5], 3)
    np.testing.assert_array_equal(starts, [[100, 101, 102], [103, 104, 105], [100, 101, 102],
                                           [103, 104, 105], [115, 116, 117]])
    with pytest.raises(ValueError, match="train_seeds"):
        bench.per_seed_starts(0, [[0, 1]], 3)
    with pytest.raises(ValueError, match="train_seeds"):
        bench.per_seed_starts(0, [-1], 3)
    with pytest.raises(ValueError, match="episodes"):
        bench.per_seed_starts(0, [0], 0)


def test_a_horizon_scores_the_first_steps_of_the_same_rollout():
    """R_H = sum_{t < H} r_t: an episode that ends before H keeps its full return, a longer one is cut at H."""
    params = _params(3)
    full, full_len = episode_returns(SPEC, params, "hopper", episodes=3, seed=40, threads=1, return_lengths=True)
    assert full_len.min() < full_len.max()  # episodes of different lengths, so the cut below is tested both ways
    h = int(np.median(full_len))
    cut, cut_len = episode_returns(SPEC, params, "hopper", episodes=3, seed=40, threads=1, return_lengths=True,
                                   horizon=h)
    np.testing.assert_array_equal(cut_len, np.minimum(full_len, h))
    short = full_len <= h
    np.testing.assert_array_equal(cut[short], full[short])
    assert not np.array_equal(cut[~short], full[~short])
    one = episode_returns(SPEC, params, "hopper", episodes=3, seed=40, threads=1, horizon=1)
    np.testing.assert_array_equal(episode_returns(SPEC, params, "hopper", episodes=3, seed=40, threads=1,
                                                  horizon=1000), full)
    assert np.all(np.abs(one) < 5)  # one step: one reward
    for bad in (0, 1001, 2.5, True, "500"):
        with pytest.raises(ValueError, match="horizon"):
            episode_returns(SPEC, params, "hopper", episodes=1, horizon=bad)


def test_explicit_starts_play_each_member_from_its_own_states():
    params = _params(2)
    default = episode_returns(SPEC, params, "hopper", episodes=2, seed=20, threads=1)
    same = episode_returns(SPEC, params, "hopper", episodes=2, seed=20, threads=1,
                           starts=np.array([[20, 21], [20, 21]]))
    np.testing.assert_array_equal(same, default)  # the shared protocol's states written out
    later = episode_returns(SPEC, params, "hopper", episodes=2, seed=22, threads=1)
    own = episode_returns(SPEC, params, "hopper", episodes=2, seed=20, threads=1,
                          starts=bench.per_seed_starts(20, [0, 1], 2))
    np.testing.assert_array_equal(own[0], default[0])  # slot 0: states 20, 21
    np.testing.assert_array_equal(own[1], later[1])  # slot 1: states 22, 23
    assert not np.array_equal(own[1], default[1])  # other start states, another return
    with pytest.raises(ValueError, match="starts"):
        episode_returns(SPEC, params, "hopper", episodes=2, starts=np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="starts"):
        episode_returns(SPEC, params, "hopper", episodes=2, starts=np.zeros((2, 2)))  # floats are not seeds
