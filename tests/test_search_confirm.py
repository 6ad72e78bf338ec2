"""Held-out confirmation: the verdict rule on a synthetic fitness whose answer is known, the bootstrap CI, report.md,
contenders.json, and ``symloss confirm RUN_DIR`` on a tiny run directory (the only test that trains)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from symloss.cli import main
from symloss.objectives import MirrorLoss, dpo, hinge, ipo
from symloss.search import (
    CONTENDERS_FILE,
    Contender,
    FitnessResult,
    RunDirError,
    SearchConfig,
    confirm,
    paired_verdict,
    read_contenders,
    top_contenders,
    write_contenders,
    write_report,
)
from symloss.search._confirm import mean_ci, seeds_needed
from symloss.search._report import TABLE_COLUMNS, report_paths

SEEDS = tuple(range(100, 110))


class SyntheticFitness:
    """score(loss, seed) = 1000 + seed_effect[seed] + shift[loss.name] + noise: the seed effect (sd 100) is
    common to every loss, as the trainer's common random numbers make it; the per-loss noise has sd ``noise``."""

    def __init__(self, shifts: dict[str, float], *, noise: float = 5.0, seeds=SEEDS, failed=()):
        self.shifts, self.noise, self.seeds, self.failed = shifts, noise, tuple(seeds), set(failed)
        self.calls: list[list[str]] = []

    def __call__(self, losses):
        self.calls.append([loss.name for loss in losses])
        common = np.random.default_rng(0).normal(0, 100, len(self.seeds))
        out = []
        for i, loss in enumerate(losses):
            if loss.name in self.failed:
                out.append(FitnessResult(-1e30, reason="seed 100: non-finite loss at step 3"))
                continue
            noise = np.random.default_rng(1 + i).normal(0, self.noise, len(self.seeds))
            values = 1000 + common + self.shifts[loss.name] + noise
            out.append(FitnessResult(float(values.mean()), float(values.std()), "", self.seeds, tuple(values)))
        return out


def contenders(*, discovered=("found",), baselines=("dpo", "ipo")) -> list[Contender]:
    zoo = {"dpo": dpo(beta=1.0), "ipo": ipo(), "hinge": hinge()}
    out = [Contender(f"symloss_{name} m(u) = -log(-u)", "discovered", MirrorLoss("-log(-u)", name=name), rung=1,
                     mean=1500.0, std=20.0, seeds=(0, 1, 2, 3, 4, 5)) for name in discovered]
    return out + [Contender(f"{name}(tuned)", "baseline", zoo[name], rung=1, mean=1400.0, std=30.0, seeds=(0, 1))
                  for name in baselines]


def run(shifts, **kw):
    return confirm(contenders(**{k: kw.pop(k) for k in ("discovered", "baselines") if k in kw}),
                   SyntheticFitness(shifts, **kw), protocol_text="final")


# -- the verdict rule -------------------------------------------------------------------------------------------

def test_a_clearly_better_discovered_loss_wins_on_the_paired_differences():
    confirmation = run({"found": 40.0, "dpo": 0.0, "ipo": -30.0})
    v = confirmation.verdict
    assert v.outcome == "win" and v.baseline == "dpo(tuned)" and v.n == 10
    assert v.ci[0] > 0 and 30 < v.difference < 50 and v.p_paired < 1e-4
    assert v.p_welch > 0.05  # the seed effect (sd 100) hides it from an unpaired test: pairing is what resolves it
    assert v.line().startswith("Verdict: WIN: symloss_found m(u) = -log(-u) vs the best baseline dpo(tuned)")


def test_a_clearly_worse_discovered_loss_loses():
    v = run({"found": -40.0, "dpo": 0.0, "ipo": -60.0}).verdict
    assert v.outcome == "loss" and v.ci[1] < 0 and v.line().startswith("Verdict: LOSS:")


def test_equal_losses_with_noise_tie_and_say_how_many_seeds_would_resolve_it():
    v = run({"found": 1.0, "dpo": 0.0, "ipo": -60.0}).verdict
    assert v.outcome == "tie" and v.ci[0] < 0 < v.ci[1]
    assert "not resolved at this number of seeds" in v.line()
    assert v.seeds_needed == seeds_needed(v.difference, v.sd) and v.seeds_needed > 10


def test_a_tie_report_says_how_to_resolve_it(tmp_path):
    confirmation = run({"found": 1.0, "dpo": 0.0, "ipo": -60.0})
    text = write_report(tmp_path, confirmation, config=SearchConfig()).read_text()
    assert (f"`symloss confirm {tmp_path} --env hopper --dataset noisy --seeds {confirmation.verdict.seeds_needed}`"
            in text)


def test_the_best_baseline_is_chosen_on_the_confirmation_not_the_search():
    confirmation = run({"found": 10.0, "dpo": -20.0, "ipo": 0.0})  # the file lists dpo first
    assert confirmation.best("baseline").contender.label == "ipo(tuned)"
    assert confirmation.verdict.baseline == "ipo(tuned)"
    assert [r.contender.label for r in confirmation.results][0] == "symloss_found m(u) = -log(-u)"
    assert set(confirmation.comparisons) == {"symloss_found m(u) = -log(-u)", "dpo(tuned)"}


def test_all_contenders_are_trained_in_one_batched_call():
    fitness = SyntheticFitness({"found": 0.0, "dpo": 0.0, "ipo": 0.0})
    confirm(contenders(), fitness, protocol_text="final")
    assert fitness.calls == [["found", "dpo", "ipo"]]


def test_two_or_three_positive_differences_are_not_a_win():
    # the bootstrap alone spans about [min d, max d]: it would call these wins (t-test p = 0.20, 0.12)
    assert paired_verdict([1.0, 2.0], [0.0, 0.0]).outcome == "tie"
    assert paired_verdict([1.0, 2.0, 0.5], [0.0, 0.0, 0.0]).outcome == "tie"


def test_the_paired_ci_is_the_hull_of_the_bootstrap_and_t_intervals_and_ignores_a_common_seed_effect():
    from scipy import stats

    x, y = np.array([3.0, 5.0, 4.0, 8.0, 6.0]), np.array([1.0, 2.0, 2.0, 5.0, 5.0])
    v = paired_verdict(x, y)
    d = x - y
    half = stats.t.ppf(0.975, 4) * d.std(ddof=1) / np.sqrt(5)
    boot = mean_ci(d)
    assert v.ci == pytest.approx((min(boot[0], d.mean() - half), max(boot[1], d.mean() + half)))
    assert v.difference == pytest.approx(2.2)
    shifted = paired_verdict(x + [0, 500, -300, 90, 7], y + [0, 500, -300, 90, 7])
    assert shifted.ci == pytest.approx(v.ci) and shifted.outcome == v.outcome == "win"


# -- the bootstrap CI and the power formula ------------------------------------------------------------------------

def test_the_percentile_ci_of_two_values_is_their_range():
    # resampled means of {1, 3}: 1, 2, 3 with probabilities 1/4, 1/2, 1/4, so the 2.5% and 97.5% points are 1 and 3
    assert mean_ci([1.0, 3.0], method="percentile") == (1.0, 3.0)


def test_ci_edge_cases_and_determinism():
    assert mean_ci([7.0]) is None and mean_ci([]) is None
    assert mean_ci([2.5, 2.5, 2.5]) == (2.5, 2.5)
    values = np.random.default_rng(3).normal(10, 2, 12)
    low, high = mean_ci(values)
    assert mean_ci(values) == (low, high)  # fixed resampling seed: the same report every time
    half = 2.201 * values.std(ddof=1) / math.sqrt(12)  # the t interval, which the bootstrap should approximate
    assert low < values.mean() < high and (high - low) == pytest.approx(2 * half, rel=0.3)


def test_seeds_needed_follows_the_normal_approximation():
    assert seeds_needed(1.0, 1.0) == 8  # ceil((1.95996 + 0.84162)^2) = ceil(7.849)
    assert seeds_needed(-0.5, 1.0) == 32  # ceil(4 * 7.849)
    assert seeds_needed(0.0, 1.0) is None


def test_paired_verdict_needs_scores_of_equal_length():
    with pytest.raises(ValueError, match="equal length"):
        paired_verdict([1.0, 2.0], [1.0])


# -- edge cases ---------------------------------------------------------------------------------------------------

def test_no_baseline_gives_no_verdict_and_says_why():
    confirmation = run({"found": 0.0}, baselines=())
    assert confirmation.verdict.outcome == "none"
    assert confirmation.verdict.line() == ("Verdict: NONE: no baseline loss was confirmed (none was given; the run had "
                                           "baselines=none): nothing to compare")
    assert confirmation.comparisons == {}


def test_no_discovered_loss_gives_no_verdict():
    confirmation = run({"dpo": 0.0, "ipo": 0.0}, discovered=())
    assert confirmation.verdict.outcome == "none" and "no discovered loss was confirmed" in confirmation.verdict.note


def test_a_failed_contender_is_shown_with_its_reason_and_left_out_of_the_verdict(tmp_path):
    confirmation = run({"found": 40.0, "dpo": 0.0, "ipo": 100.0}, failed=("ipo",))
    assert confirmation.verdict.baseline == "dpo(tuned)" and confirmation.verdict.outcome == "win"
    failed = confirmation.results[-1]
    assert failed.contender.label == "ipo(tuned)" and "non-finite loss" in failed.reason
    text = write_report(tmp_path, confirmation, config=SearchConfig()).read_text()
    assert "| ipo(tuned) | baseline | 1400 ± 30 (rung 1, 2 seeds) | failed: seed 100: non-finite loss at step 3 |" in text


def test_every_discovered_loss_failing_gives_no_verdict():
    v = run({"dpo": 0.0, "ipo": 0.0}, failed=("found",)).verdict
    assert v.outcome == "none" and "no discovered loss was confirmed (1 of 1 failed; see the table)" in v.note


def test_a_crashing_fitness_marks_every_contender_failed():
    def crash(losses):
        raise RuntimeError("out of memory")

    confirmation = confirm(contenders(), crash, protocol_text="final")
    assert all(not r.ok and "out of memory" in r.reason for r in confirmation.results)
    assert confirmation.verdict.outcome == "none"


def test_one_seed_has_no_ci_and_says_so(tmp_path):
    confirmation = run({"found": 40.0, "dpo": 0.0, "ipo": 0.0}, seeds=(100,))
    v = confirmation.verdict
    assert v.outcome == "tie" and v.ci is None and "one seed: no confidence interval" in v.line()
    text = write_report(tmp_path, confirmation, config=SearchConfig()).read_text()
    assert "n/a (fewer than 2 seeds)" in text and "Power: not computed" in text and "nan" not in text


def test_duplicate_labels_are_refused():
    twice = contenders() + contenders()[:1]
    with pytest.raises(ValueError, match="given twice"):
        confirm(twice, SyntheticFitness({"found": 0.0, "dpo": 0.0, "ipo": 0.0}), protocol_text="final")


# -- report.md ------------------------------------------------------------------------------------------------------

def test_report_has_the_setting_the_table_one_verdict_line_and_the_plot(tmp_path):
    confirmation = run({"found": 40.0, "dpo": 0.0, "ipo": -30.0})
    path = write_report(tmp_path, confirmation, config=SearchConfig())
    text = path.read_text()
    assert path.name == "report.md" and (tmp_path / "confirm.png").read_bytes()[:4] == b"\x89PNG"
    assert "hopper/noisy" in text and "protocol `final`" in text and "Training seeds 100..109 (10)" in text
    assert "reset(seed=11600) .. reset(seed=11759) (16 per policy, a block of its own for each training seed" in text
    assert "Held out: none of these seeds" in text
    assert ("at lr 0.0003 (minibatches in shuffled epochs), fitness `return` with `greedy` actions of the averaged "
            "weights (ema 0.995), mean over 4 checkpoints at steps 375, 450, 525, 600.") in text
    plain = write_report(tmp_path, confirmation, config=SearchConfig(confirm_protocol="final:ema=none:checkpoints=1:"
                                                                                       "sampling=replacement"))
    assert "(minibatches drawn with replacement)" in plain.read_text() and "actions of the last weights." in plain.read_text()
    assert "which favours the baseline): a WIN is a conservative claim" in text
    assert "| " + " | ".join(TABLE_COLUMNS) + " |" in text and "search fitness (not a result)" in text
    assert "| symloss_found m(u) = -log(-u) | discovered | 1500 ± 20 (rung 1, 6 seeds) |" in text
    assert "| dpo(tuned) | baseline | 1400 ± 30 (rung 1, 2 seeds) |" in text and "(the best baseline)" in text
    verdicts = [line for line in text.splitlines() if line.startswith("Verdict:")]
    assert verdicts == [confirmation.verdict.line()] and verdicts[0].startswith("Verdict: WIN")
    assert "Power: the observed difference" in text and "(normal approximation)" in text
    assert "![per-seed scores and 95% CIs](confirm.png)" in text


def test_reports_are_never_overwritten(tmp_path):
    confirmation = run({"found": 0.0, "dpo": 0.0, "ipo": 0.0})
    first = write_report(tmp_path, confirmation, config=SearchConfig())
    second = write_report(tmp_path, confirmation, config=SearchConfig())
    assert (first.name, second.name) == ("report.md", "report-2.md") and (tmp_path / "confirm-2.png").exists()
    (tmp_path / "confirm-hopper-noisy-seeds100-109.png").write_bytes(b"someone's plot")
    assert [p.name for p in report_paths(tmp_path, "hopper-noisy-seeds100-109")] == [
        "report-hopper-noisy-seeds100-109-2.md", "confirm-hopper-noisy-seeds100-109-2.png"]


# -- contenders.json ------------------------------------------------------------------------------------------------

def test_contenders_round_trip(tmp_path):
    given = contenders()
    path = write_contenders(tmp_path / CONTENDERS_FILE, given)
    assert read_contenders(path) == given and not (tmp_path / (CONTENDERS_FILE + ".tmp")).exists()


def test_top_keeps_the_first_k_of_each_kind():
    labels = [c.label for c in top_contenders(contenders(discovered=("a", "b"), baselines=("dpo", "ipo", "hinge")), 1)]
    assert labels == ["symloss_a m(u) = -log(-u)", "dpo(tuned)"]


@pytest.mark.parametrize(("change", "message"), [
    ({"kind": "winner"}, "contenders[0].kind='winner': must be one of ['discovered', 'baseline']"),
    ({"label": ""}, "contenders[0].label='': must be a text of 1 to 200 characters"),
    ({"loss": {"mirror": "__import__('os').system('x')"}}, "contenders[0].loss: invalid loss"),
    ({"loss": "dpo"}, "contenders[0].loss='dpo': must be the object of MirrorLoss.to_dict()"),
    ({"mean": "high"}, "contenders[0].mean='high': must be a finite number or null"),
    ({"rung": -1}, "contenders[0].rung=-1: must be an integer >= 0 or null"),
    ({"seeds": [0, -1]}, "contenders[0].seeds=[0, -1]: must be a list of integers >= 0"),
    ({"score": 3}, "contenders[0]: unknown field 'score'"),
])
def test_a_bad_contender_names_the_field_and_the_fix(tmp_path, change, message):
    path = write_contenders(tmp_path / CONTENDERS_FILE, contenders())
    data = json.loads(path.read_text())
    data["contenders"][0].update(change)
    path.write_text(json.dumps(data))
    with pytest.raises(RunDirError) as info:
        read_contenders(path)
    assert message in str(info.value) and "symloss search --resume" in str(info.value)


@pytest.mark.parametrize(("text", "message"), [
    (None, "no such file; a search writes it when it ends"),
    ("{not json", "cannot be read as JSON"),
    ('{"format": "other", "contenders": []}', "expected an object with format='symloss.contenders/1'"),
])
def test_a_bad_contenders_file_is_one_clear_error(tmp_path, text, message):
    path = tmp_path / CONTENDERS_FILE
    if text is not None:
        path.write_text(text)
    with pytest.raises(RunDirError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_contenders(path)


def test_a_label_given_twice_in_the_file_is_refused(tmp_path):
    path = write_contenders(tmp_path / CONTENDERS_FILE, contenders())
    data = json.loads(path.read_text())
    data["contenders"].append(data["contenders"][0])
    path.write_text(json.dumps(data))
    with pytest.raises(RunDirError, match=r"contenders\[3\].label=.*given twice"):
        read_contenders(path)


# -- symloss confirm RUN_DIR ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A run directory (config.json with a tiny protocol, contenders.json with dpo and one formula) and a cache with
    a 64-pair Hopper noisy dataset and a 5-step SFT reference."""
    from symloss import bench
    from symloss.bench import _reference

    cache = tmp_path_factory.mktemp("cache")
    ds = bench.build_dataset("hopper", "noisy", n_pairs=64, cache_dir=cache, progress=False)
    spec, fit = bench.spec_for_dataset(ds), bench.fit_reference
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_reference, "fit_reference", lambda spec, ds, **kw: fit(spec, ds, **{**kw, "steps": 5}))
        bench.load_reference(ds, spec, cache_dir=cache)
    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    run_dir.mkdir()
    tiny = "steps=2:batch_size=8:seeds=2:episodes=1"
    config = SearchConfig(n_pairs=64, train={"steps": 2, "batch_size": 8, "seeds": 2, "episodes": 1},
                          rungs=(), confirm_protocol=f"final:{tiny}", run_dir=str(run_dir))
    (run_dir / "config.json").write_text(json.dumps(config.to_dict()))
    write_contenders(run_dir / CONTENDERS_FILE, [
        Contender("symloss_ab12 m(u) = u - log(1 - exp(u))", "discovered", MirrorLoss("u - log(1 - exp(u))"),
                  rung=0, mean=900.0, std=50.0, seeds=(0, 1)),
        Contender("dpo(beta=1)", "baseline", dpo(beta=1.0), rung=0, mean=850.0, std=40.0, seeds=(0, 1))])
    return run_dir, cache


def test_symloss_confirm_writes_a_tagged_report(tiny_run, capsys, monkeypatch):
    run_dir, cache = tiny_run
    monkeypatch.setenv("SYMLOSS_CACHE", str(cache))
    assert main(["confirm", str(run_dir), "--seeds", "3", "--no-progress"]) == 0
    out = capsys.readouterr().out
    report = run_dir / "report-hopper-noisy-seeds100-102.md"
    assert f"report: {report}" in out and "| dpo(beta=1) | baseline |" in out
    text = report.read_text()
    assert "protocol `final:steps=2:batch_size=8:episodes=1:seeds=3`" in text
    assert ("Training seeds 100..102 (3), evaluation episodes from reset(seed=10100) .. reset(seed=10102) (1 per "
            "policy, a block of its own for each training seed") in text
    assert sum(line.startswith("Verdict: ") for line in text.splitlines()) == 1
    assert (run_dir / "confirm-hopper-noisy-seeds100-102.png").is_file()


@pytest.mark.parametrize(("argv", "message"), [
    (["confirm", "/nonexistent/run"], "RUN_DIR='/nonexistent/run': no such directory"),
    (["confirm", "RUN", "--first-seed", "0"], "trains on seed 0, which rung 0 also uses"),
    (["confirm", "RUN", "--seeds", "0"], "--seeds=0: must be an integer >= 1"),
    (["confirm", "RUN", "--top", "0"], "--top=0: must be an integer >= 1"),
    (["confirm", "RUN", "--dataset", "nosy"], "did you mean 'noisy'"),
])
def test_symloss_confirm_bad_input_is_one_line_and_exit_2(tiny_run, capsys, argv, message):
    argv = [str(tiny_run[0]) if a == "RUN" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("symloss confirm: error: ") and message in err and err.count("\n") == 1


def test_symloss_confirm_without_contenders_says_how_to_get_them(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps(SearchConfig().to_dict()))
    assert main(["confirm", str(tmp_path)]) == 2
    assert "contenders.json: no such file; a search writes it when it ends" in capsys.readouterr().err



def test_the_verdict_is_for_the_searchs_top_discovered_loss_not_the_best_on_the_held_out_seeds():
    # "second" scores higher on the held-out seeds, but "first" is the search's pick (listed first): picking the
    # better of two on the data that judges them would bias the claim upwards
    confirmation = run({"first": -40.0, "second": 40.0, "dpo": 0.0}, discovered=("first", "second"),
                       baselines=("dpo",))
    assert confirmation.verdict.discovered == "symloss_first m(u) = -log(-u)"
    assert confirmation.verdict.outcome == "loss"
    assert confirmation.comparisons["symloss_second m(u) = -log(-u)"].outcome == "win"  # in the table, not the verdict


def test_the_report_keeps_its_numbers_beside_it(tmp_path):
    import json

    confirmation = run({"found": 40.0, "dpo": 0.0, "ipo": -30.0})
    report = write_report(tmp_path, confirmation, config=SearchConfig(), reference=1101.0)
    data = json.loads(report.with_suffix(".json").read_text())
    assert data["reference"] == 1101.0 and "The SFT reference without any training scores 1101" in report.read_text()
    assert data["verdict"]["outcome"] == "win" and data["verdict"]["line"] in report.read_text()
    found = next(r for r in data["results"] if r["kind"] == "discovered")
    assert len(found["per_seed"]) == len(found["seeds"]) == 10
    assert "A 10% difference" in report.read_text()
