"""benchmarks/protocol_compare.py and the moving-loss seed count of protocol_reliability, on hand-made runs."""

import importlib.util
import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
spec = importlib.util.spec_from_file_location("protocol_compare", ROOT / "benchmarks" / "protocol_compare.py")
compare = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare)
reliability = sys.modules["protocol_reliability"]


def layout(means, seed_offsets, states=2):
    """Returns ``[P, S, E]``: loss i on seed s scores means[i] + seed_offsets[i][s] on every start state."""
    return np.array([[[m + d] * states for d in offs] for m, offs in zip(means, seed_offsets)], dtype=float)


def test_seeds_for_moving_counts_only_losses_that_leave_the_reference():
    # loss 0 sits at the reference (no spread), losses 1-3 move and spread by +-10, +-20, +-40 over 4 seeds
    r = layout([100, 200, 300, 400], [[0, 0, 0, 0], [10, -10, 10, -10], [20, -20, 20, -20], [40, -40, 40, -40]])
    median, p25, p75, count = reliability.seeds_for_moving(r, reference=100.0)
    z2 = reliability.Z2
    per_loss = [2 * z2 * np.var([d, -d, d, -d], ddof=1) / (0.1 * m) ** 2 for m, d in ((200, 10), (300, 20), (400, 40))]
    assert count == 3
    assert median == pytest.approx(np.median(per_loss))
    assert (p25, p75) == pytest.approx((np.percentile(per_loss, 25), np.percentile(per_loss, 75)))
    # the pooled figure includes the still loss and so differs from the moving-loss one
    assert reliability.seeds_needed(r, 100.0)[0] != pytest.approx(median)


def test_seeds_for_moving_splits_the_losses_above_and_below_the_reference():
    # losses 1, 2 beat the reference with small spreads; losses 3, 4 collapse under it with large ones
    offsets = [[0, 0, 0, 0], [10, -10, 10, -10], [20, -20, 20, -20], [15, -15, 15, -15], [30, -30, 30, -30]]
    r = layout([100, 200, 300, 40, 20], offsets)
    z2 = reliability.Z2
    n = {m: 2 * z2 * np.var([d, -d, d, -d], ddof=1) / (0.1 * m) ** 2 for m, d in ((200, 10), (300, 20), (40, 15),
                                                                                (20, 30))}
    above = reliability.seeds_for_moving(r, 100.0, side="above")
    below = reliability.seeds_for_moving(r, 100.0, side="below")
    both = reliability.seeds_for_moving(r, 100.0)
    assert above[3] == 2 and above[0] == pytest.approx(np.median([n[200], n[300]]))
    assert below[3] == 2 and below[0] == pytest.approx(np.median([n[40], n[20]]))
    assert both[3] == 4 and both[0] == pytest.approx(np.median(list(n.values())))
    assert above[0] < both[0] < below[0]  # a collapsed loss's 10% is a small step: many seeds


def test_seeds_for_moving_is_nan_when_fewer_than_two_losses_move():
    r = layout([100, 101, 400], [[0, 1], [1, 0], [5, -5]])
    median, *_, count = reliability.seeds_for_moving(r, reference=100.0)
    assert count == 1 and np.isnan(median)


def write_run(path, names, returns, reference=100.0, rules=("greedy",)):
    run = {"names": names, "final": {rule: {"returns": np.asarray(returns).tolist(), "reference": reference}
                                     for rule in rules}}
    path.write_text(json.dumps(run))
    return str(path)


def test_compare_ranks_common_losses_and_reports_reversed_order(tmp_path, capsys):
    offs = [[5, -5, 5, -5]] * 4
    a = write_run(tmp_path / "a.json", ["dpo", "ipo", "orpo", "m=u"], layout([200, 300, 400, 500], offs))
    # b has one extra loss, drops "m=u", and ranks the shared three in reverse
    b = write_run(tmp_path / "b.json", ["orpo", "ipo", "dpo", "simpo"], layout([200, 300, 400, 50], offs))
    compare.main([f"first={a}", f"second={b}"])
    out = capsys.readouterr().out
    assert out.startswith("3 losses common to 2 runs")
    assert "| first | greedy | 4 x 2 | 1.000, 1.000 |" in out  # well separated: halves agree exactly
    assert "- first:greedy vs second:greedy: -1.000; Pearson -1.000; 0 of 3 pairs" in out


def test_separated_agreement_counts_only_pairs_more_than_10_percent_apart():
    a = np.array([100.0, 105.0, 200.0, 400.0])
    b = np.array([106.0, 101.0, 390.0, 210.0])  # the near-tie swaps (left out); 200 / 400 swap (counted)
    assert compare.separated_agreement(a, b) == (4, 5)  # (0, 1) is within 10% in both runs
    assert compare.separated_agreement(a, b, separation=0.0) == (4, 6)
    assert compare.separated_agreement(a, np.array([300.0, 301.0, 100.0, 50.0])) == (0, 5)


def test_compare_zoo_only_drops_random_maps(tmp_path, capsys):
    offs = [[5, -5]] * 4
    a = write_run(tmp_path / "a.json", ["dpo", "ipo", "orpo", "m=u"], layout([200, 300, 400, 500], offs))
    b = write_run(tmp_path / "b.json", ["dpo", "ipo", "orpo", "m=u"], layout([210, 290, 420, 100], offs))
    compare.main([a, b, "--zoo-only"])
    out = capsys.readouterr().out
    assert out.startswith("3 losses common to 2 runs (zoo only)")
    assert "- a:greedy vs b:greedy: 1.000" in out


def test_compare_sides_prints_the_contenders_and_the_collapsed_apart(tmp_path, capsys):
    offs = [[0, 0], [10, -10], [20, -20], [15, -15], [30, -30]]
    names = ["dpo", "ipo", "orpo", "simpo", "hinge"]
    a = write_run(tmp_path / "a.json", names, layout([100, 200, 300, 40, 20], offs))
    b = write_run(tmp_path / "b.json", names, layout([100, 210, 290, 45, 25], offs))
    compare.main([a, b, "--sides"])
    out = capsys.readouterr().out
    r = layout([100, 200, 300, 40, 20], offs)
    above, below = (reliability.seeds_for_moving(r, 100.0, side=side) for side in ("above", "below"))
    assert "moving above / below the reference: median (count) |" in out
    assert f" {above[0]:.1f} (2) / {below[0]:.1f} (2) |" in out


@pytest.mark.parametrize("content, message", [
    ("not json", "cannot read a protocol_reliability JSON"),
    ('{"names": []}', r"not a protocol_reliability JSON \(needs 'names' and 'final'\)"),
])
def test_compare_refuses_a_bad_file_in_one_line(tmp_path, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(SystemExit, match=message) as err:
        compare.main([str(bad)])
    assert "\n" not in str(err.value) and "--json" in str(err.value)


def test_compare_needs_three_shared_losses_and_distinct_labels(tmp_path):
    a = write_run(tmp_path / "a.json", ["dpo", "ipo", "orpo"], layout([1, 2, 3], [[0, 1]] * 3))
    b = write_run(tmp_path / "b.json", ["dpo", "simpo", "kto"], layout([1, 2, 3], [[0, 1]] * 3))
    with pytest.raises(SystemExit, match="the runs share 1 losses; at least 3"):
        compare.main([a, b])
    with pytest.raises(SystemExit, match="two runs share a label"):
        compare.main([f"x={a}", f"x={b}"])
    with pytest.raises(SystemExit, match="no run has the rules"):
        compare.main([a, f"y={a}", "--rules", "sample"])


def test_compare_loss_table_gives_welch_p_against_the_first_run(tmp_path, capsys):
    from scipy import stats
    names = ["dpo", "ipo", "orpo"]
    clean = layout([500, 300, 900], [[10, -10, 5, -5]] * 3)
    noisy = layout([480, 310, 100], [[12, -8, 3, -7]] * 3)
    a = write_run(tmp_path / "clean.json", names, clean, reference=400.0, rules=("greedy", "mean"))
    b = write_run(tmp_path / "noisy.json", names, noisy, reference=350.0, rules=("greedy", "mean"))
    compare.main([a, b, "--losses", "mean"])
    out = capsys.readouterr().out
    p = stats.ttest_ind(noisy[2].mean(1), clean[2].mean(1), equal_var=False).pvalue
    assert f"| orpo | **900 +- 9** | 100 +- 9 | {p:.2g} |" in out  # best of clean in bold, best of noisy is dpo
    assert "| dpo | 500 +- 9 | **480 +- 9** |" in out
    assert "| untrained reference | 400 | 350 | - |" in out
    with pytest.raises(SystemExit, match=r"--losses sample: runs \['clean', 'noisy'\] have no such rule"):
        compare.main([a, b, "--losses", "sample"])


def test_compare_counts_a_soups_rows_as_its_seeds(tmp_path, capsys):
    """A seed-soup rule's per-row variance is per soup of G seeds: its seed counts are G x the per-row ones."""
    names = ["dpo", "ipo", "orpo"]
    r = layout([200, 300, 400], [[10, -10, 10, -10], [20, -20, 20, -20], [40, -40, 40, -40]])
    path = tmp_path / "soup.json"
    run = {"names": names, "final": {"greedy": {"returns": r.tolist(), "reference": 100.0},
                                      "greedy~soup4": {"returns": r.tolist(), "reference": 100.0, "seeds_per_unit": 4}}}
    path.write_text(json.dumps(run))
    compare.main([f"s={path}"])
    rows = {line.split("|")[2].strip(): line.split("|") for line in capsys.readouterr().out.splitlines()
            if line.startswith("| s |")}
    assert rows["greedy~soup4"][3].strip() == "4 soups of 4 x 2"
    plain, soup = float(rows["greedy"][6].split()[0]), float(rows["greedy~soup4"][6].split()[0])
    assert soup == pytest.approx(4 * plain, rel=1e-3)


def noisy_layout(rng, means, seed_sd, res_sd, seeds=6, states=16):
    """``[P, S, E]``: mean + a seed effect + a start-state effect shared by every loss and seed + residual noise."""
    state = rng.normal(0, 50, states)
    return np.array([[m + rng.normal(0, seed_sd) + state + rng.normal(0, res_sd, states) for _ in range(seeds)]
                     for m in means])


def test_projection_to_the_runs_own_states_equals_the_observed_spread():
    # Var_s of a seed's mean over E states is sigma^2_seed + sigma^2_res / E exactly (the ANOVA identity), so
    # projecting to the run's own E reproduces the observed count unless a seed component was clipped at zero
    r = noisy_layout(np.random.default_rng(3), [300, 500, 700, 900], seed_sd=40, res_sd=60)
    assert all(reliability.components(r[i])["seed"] > 0 for i in range(4))
    observed = reliability.seeds_for_moving(r, reference=100.0)
    assert reliability.seeds_for_moving(r, reference=100.0, episodes=16) == pytest.approx(observed)


def test_projection_shrinks_with_more_states_down_to_the_seed_floor():
    r = noisy_layout(np.random.default_rng(4), [300, 500, 700, 900], seed_sd=40, res_sd=400)
    counts = [reliability.seeds_for_moving(r, reference=100.0, episodes=e)[0] for e in (16, 64, 256, math.inf)]
    assert counts == sorted(counts, reverse=True) and counts[0] > 2 * counts[-1]
    seed_floor = [2 * reliability.Z2 * reliability.components(r[i])["seed"] / (0.1 * r[i].mean()) ** 2
                  for i in range(4)]
    assert counts[-1] == pytest.approx(np.median(seed_floor))
    # with no episode noise at all (every start state scores the same) the number of states does not matter
    flat = layout([300, 500, 700], [[10, -10, 30, 0], [20, -20, 5, 9], [40, -40, 7, 1]], states=4)
    assert (reliability.seeds_for_moving(flat, 100.0, episodes=4)[0]
            == pytest.approx(reliability.seeds_for_moving(flat, 100.0, episodes=math.inf)[0]))


def test_per_seed_projection_counts_the_start_state_set_a_shared_run_holds_fixed():
    """Each loss reacts to its own start states (sd 300, common to its seeds): on shared states that reaction is held
    fixed and a few seeds suffice; drawn per seed it varies from seed to seed and the count rises to what the
    per-seed formula gives. A run made per seed shows that count directly."""
    rng = np.random.default_rng(6)
    means, seed_sd, state_sd, res_sd = [300, 500, 700, 900], 20.0, 300.0, 50.0

    def run(per_seed):
        shared_states = [rng.normal(0, state_sd, 16) for _ in means]
        return np.array([[m + rng.normal(0, seed_sd) + (rng.normal(0, state_sd, 16) if per_seed else states)
                          + rng.normal(0, res_sd, 16) for _ in range(40)] for m, states in zip(means, shared_states)])

    shared = run(False)
    fixed = reliability.seeds_for_moving(shared, 100.0, episodes=16)[0]
    fresh = reliability.seeds_for_moving(shared, 100.0, episodes=16, per_seed_states=True)[0]
    expected = np.median([2 * reliability.Z2 * (seed_sd**2 + (state_sd**2 + res_sd**2) / 16) / (0.1 * m) ** 2
                          for m in means])
    assert fixed < 0.2 * fresh and fresh == pytest.approx(expected, rel=0.35)
    direct = reliability.seeds_for_moving(run(True), 100.0)[0]  # states drawn per seed: measured, not projected
    assert direct == pytest.approx(expected, rel=0.35)


def test_compare_prints_the_projection_when_asked(tmp_path, capsys):
    r = noisy_layout(np.random.default_rng(5), [300, 500, 700, 900], seed_sd=40, res_sd=200)
    a = write_run(tmp_path / "a.json", ["dpo", "ipo", "orpo", "hinge"], r)
    compare.main([a, "--states", "64"])
    out = capsys.readouterr().out
    assert "projected to 64 states / episode-free" in out
    expected = (reliability.seeds_for_moving(r, 100.0, episodes=64)[0],
                reliability.seeds_for_moving(r, 100.0, episodes=math.inf)[0],
                reliability.seeds_for_moving(r, 100.0, episodes=64, per_seed_states=True)[0])
    assert f" {expected[0]:.1f} / {expected[1]:.1f} / {expected[2]:.1f} |" in out
    assert expected[2] > expected[0]  # the shared start-state effect (sd 50) counts when states are drawn per seed


def test_first_states_cuts_every_run_to_its_first_start_states(tmp_path, capsys):
    r = noisy_layout(np.random.default_rng(6), [300, 500, 700, 900], seed_sd=40, res_sd=200, states=8)
    a = write_run(tmp_path / "a.json", ["dpo", "ipo", "orpo", "hinge"], r)
    compare.main([a, "--first-states", "4", "--states", "8"])
    out = capsys.readouterr().out
    assert "| a | greedy | 6 x 4 |" in out
    cut = reliability.seeds_for_moving(r[..., :4], 100.0)
    assert f"{cut[0]:.1f} ({cut[1]:.1f}-{cut[2]:.1f}), 4 |" in out
    with pytest.raises(SystemExit, match="--first-states 9: run 'a' rule 'greedy' has 8 start states"):
        compare.main([a, "--first-states", "9"])


def test_subset_ranks_k_seeds_against_the_rest():
    # one seed (index 0) reverses the ranking: it is in the k-seed part or the rest by the draw, never in both
    r = layout([100, 200, 300, 400], [[0, 0, 0, 0]] * 4, states=4)
    r[:, 0] = r[::-1, 0]
    rho = [reliability.split_half(r, np.random.default_rng(0), repeats=200, subset=k)[0] for k in (1, 3)]
    # k = 1: the reversed seed is the whole first part in 1/4 of the draws (rho -1), else the first part is
    # clean and the rest's mean stays ordered (rho 1): 1/4 * -1 + 3/4 * 1 = 0.5, up to the draw
    assert 0.3 < rho[0] < 0.7
    # k = 3 against one seed: the lone seed is the reversed one in 1/4 of the draws (rho -1); else the
    # 3-seed part holds it, and its mean (one reversed of three) is still ordered: rho 1
    assert 0.3 < rho[1] < 0.7
    clean = layout([100, 200, 300, 400], [[1, -1, 2, -2]] * 4, states=4)
    assert reliability.split_half(clean, np.random.default_rng(0), subset=2) == (1.0, 1.0)


def test_split_half_without_subset_is_unchanged():
    r = noisy_layout(np.random.default_rng(7), [300, 500, 700, 900], seed_sd=80, res_sd=300, states=8)
    rng, rhos = np.random.default_rng(3), []
    for _ in range(100):  # the equal halves every recorded figure used
        seeds, eps = rng.permutation(6), rng.permutation(8)
        a = r[:, seeds[:3]][:, :, eps[:4]].mean((1, 2))
        b = r[:, seeds[3:6]][:, :, eps[4:8]].mean((1, 2))
        rhos.append(compare.stats.spearmanr(a, b).statistic)
    assert reliability.split_half(r, np.random.default_rng(3)) == (float(np.nanmean(rhos)),
                                                                   float(np.nanpercentile(rhos, 10)))


def test_split_half_of_states_drawn_per_seed_splits_the_seeds_only():
    """Per-seed blocks: halves of the seeds share no start state, so each half keeps all E states of its seeds."""
    r = noisy_layout(np.random.default_rng(9), [300, 500, 700, 900], seed_sd=80, res_sd=300, states=8)
    rng, rhos = np.random.default_rng(4), []
    for _ in range(100):
        seeds, _ = rng.permutation(6), rng.permutation(8)  # the same draws as split_half's
        rhos.append(compare.stats.spearmanr(r[:, seeds[:3]].mean((1, 2)), r[:, seeds[3:6]].mean((1, 2))).statistic)
    got = reliability.split_half(r, np.random.default_rng(4), per_seed=True)
    assert got == (float(np.nanmean(rhos)), float(np.nanpercentile(rhos, 10)))
    assert got != reliability.split_half(r, np.random.default_rng(4))  # the shared split halves the episodes
    # twice the episodes per half: over many layouts, the per-seed split is the more reliable one
    gains = []
    for k in range(6):
        x = noisy_layout(np.random.default_rng(20 + k), [300, 400, 500, 600], seed_sd=20, res_sd=400, states=8)
        gains.append(reliability.split_half(x, np.random.default_rng(k), pearson=True, per_seed=True)[0]
                     - reliability.split_half(x, np.random.default_rng(k), pearson=True)[0])
    assert np.mean(gains) > 0.05


def test_compare_prints_the_subset_fidelity(tmp_path, capsys):
    r = noisy_layout(np.random.default_rng(8), [300, 500, 700, 900], seed_sd=40, res_sd=200, states=8)
    a = write_run(tmp_path / "a.json", ["dpo", "ipo", "orpo", "hinge"], r)
    compare.main([a, "--subset", "2"])
    out = capsys.readouterr().out
    assert "2 seeds vs the rest, rho (mean, p10)" in out
    compare.main([a, "--subset", "6"])  # no seed left for the rest
    assert out.splitlines()[4].count("|") == capsys.readouterr().out.splitlines()[4].count("|")


def test_thin_averages_every_other_checkpoint_counted_back_from_the_last(tmp_path):
    """``--thin 2`` on a run with 4 checkpoints (@150, @300, @450 and the last, 600) averages @300 and 600."""
    rng = np.random.default_rng(3)
    names = ["dpo", "ipo", "orpo"]
    parts = {rule: rng.normal(500, 100, (3, 4, 2)) for rule in ("g@150", "g@300", "g@450", "g")}
    final = {rule: {"returns": r.tolist(), "reference": 100.0} for rule, r in parts.items()}
    final["g@avg4"] = {"returns": np.mean(list(parts.values()), axis=0).tolist(), "reference": 100.0}
    final["g~soup2@avg4"] = {"returns": final["g@avg4"]["returns"], "reference": 100.0}  # no soup checkpoints: refused
    run = {"names": names, "final": {k: v for k, v in final.items() if "~" not in k}}
    thinned = compare.thin_checkpoints(run, 2, "a")
    assert set(thinned["final"]) == set(run["final"]) | {"g@avg2of4"}
    np.testing.assert_allclose(thinned["final"]["g@avg2of4"]["returns"], (parts["g@300"] + parts["g"]) / 2)
    np.testing.assert_allclose(compare.thin_checkpoints(run, 4, "a")["final"]["g@avg1of4"]["returns"], parts["g"])
    with pytest.raises(SystemExit, match="--thin 3: run 'a' rule 'g@avg4' averages 4 checkpoints"):
        compare.thin_checkpoints(run, 3, "a")
    with pytest.raises(SystemExit, match="--thin 2: run 'a' rule 'g~soup2@avg4' averages 4 checkpoints \\(1 stored\\)"):
        compare.thin_checkpoints({"names": names, "final": final}, 2, "a")
    path = tmp_path / "plain.json"
    write_run(path, names, parts["g"])
    with pytest.raises(SystemExit, match="run 'p' stores no average over checkpoints"):
        compare.main([f"p={path}", "--thin", "2"])


def test_compare_prints_the_g_study_and_knows_a_per_seed_run(tmp_path, capsys):
    r = noisy_layout(np.random.default_rng(7), [300, 500, 700, 900], seed_sd=40, res_sd=200)
    a = write_run(tmp_path / "a.json", ["dpo", "ipo", "orpo", "hinge"], r)
    run = json.loads(Path(b := write_run(tmp_path / "b.json", ["dpo", "ipo", "orpo", "hinge"], r[:, ::-1])).read_text())
    run["args"] = {"states": "per-seed"}
    Path(b).write_text(json.dumps(run))
    compare.main([f"a={a}", f"b={b}", "--g-study"])
    out = capsys.readouterr().out
    assert "| run | rule | states | sd loss / loss x seed / loss x state / residual |" in out
    v = reliability.g_study(r)
    expected = f"{reliability.g_coefficient(v, r.shape[1], r.shape[2]):.3f}"
    row_a = next(line for line in out.splitlines() if line.startswith("| a | greedy | shared |"))
    assert f"| {expected} |" in row_a
    row_b = next(line for line in out.splitlines() if line.startswith("| b | greedy | per seed |"))
    assert "| -, " in row_b  # a per-seed run cannot project shared states


def test_pool_splits_the_seeds_of_per_seed_runs_into_parts_of_k(tmp_path, capsys):
    names = ["dpo", "ipo", "orpo", "hinge"]
    paths = []
    for k, seed in enumerate((11, 12)):
        r = noisy_layout(np.random.default_rng(seed), [300, 500, 700, 900], seed_sd=40, res_sd=200, seeds=4, states=4)
        path = write_run(tmp_path / f"{k}.json", names, r)
        run = json.loads(Path(path).read_text())
        Path(path).write_text(json.dumps({**run, "args": {"states": "per-seed"}}))
        paths.append(path)
    pooled = compare.pooled_returns(dict(compare.load_run(p) for p in paths), names, "greedy")
    assert pooled.shape == (4, 8, 4)
    compare.main(paths + ["--pool"])
    out = capsys.readouterr().out
    assert "pooled 0 + 1 under greedy: 8 seeds x 4 start states per seed" in out
    table = out.split("pooled 0 + 1")[1]
    rows = [line for line in table.splitlines() if re.match(r"\| [1-4] \| ", line)]
    assert [line.split(" | ")[0] for line in rows] == ["| 1", "| 2", "| 3", "| 4"]
    g = [float(line.rstrip(" |").split(" | ")[-1]) for line in rows]
    assert g == sorted(g) and g[0] < g[-1]  # more seeds per part, a more reliable part
    with pytest.raises(ValueError, match="half=5"):
        reliability.split_half(pooled, np.random.default_rng(0), per_seed=True, half=5)
    shared = write_run(tmp_path / "shared.json", names, pooled[:, :4])
    with pytest.raises(SystemExit, match="run 'shared' shares its start states"):
        compare.main([paths[0], shared, "--pool"])
    fewer = write_run(tmp_path / "fewer.json", names, pooled[:, :4, :2])
    Path(fewer).write_text(json.dumps({**json.loads(Path(fewer).read_text()), "args": {"states": "per-seed"}}))
    with pytest.raises(SystemExit, match=r"play \[2, 4\] start states per seed"):
        compare.main([paths[0], fewer, "--pool"])
