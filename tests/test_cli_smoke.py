"""The ``symloss`` command itself, run as a subprocess (``python -m symloss``) on tiny budgets.

Every subcommand runs once end to end with each family of options (int, float, tuple, choice, bool,
paths). One search run is shared by the module: ``search``, then ``--resume`` alongside ``eval`` and
``export`` of a copy of its best.json. The dataset cache (``$SYMLOSS_CACHE``) is one temporary directory
for the whole session: a 64-pair Hopper ``noisy`` set built by ``symloss data build``, and an SFT reference
fitted with 5 Adam steps instead of 1500, stored under the key the CLI reads (the full fit takes minutes on
2 cores; these tests check the command's wiring, not the reference). Independent commands run side by
side: each spends most of its time importing torch and SymPy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from symloss.cli import main
from symloss.integrations import load_loss
from symloss.objectives import LOSSES

ROOT = Path(__file__).resolve().parents[1]
N_PAIRS = "64"
TINY_SEARCH = ("--n-pairs", N_PAIRS, "--population", "4", "--elite", "1", "--steps", "2", "--batch-size", "8",
               "--episodes", "1", "--seeds", "1", "--fitness", "offline", "--hall-of-fame", "5", "--seed", "3",
               "--parsimony", "0.01", "--lr", "1e-3", "--beta", "0.5", "--constant-range=-2,2",
               "--init-depth", "1,3", "--max-height", "6", "--selection", "nsga2", "--no-temporal",
               "--slots", "mirror", "--base", "dpo", "--no-progress", "--baselines", "small", "--confirm", "1",
               "--confirm-protocol", "final:steps=2:batch_size=8:seeds=2:episodes=1")


def symloss(*argv: str, cache: Path) -> subprocess.CompletedProcess:
    """``python -m symloss ARGV`` with this checkout's code, offline, one thread, the session's cache."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1",
           "SYMLOSS_CACHE": str(cache)}
    return subprocess.run([sys.executable, "-m", "symloss", *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def side_by_side(*commands: tuple[str, ...], cache: Path) -> list[subprocess.CompletedProcess]:
    """Run independent ``symloss`` commands at the same time; their results in the given order."""
    with ThreadPoolExecutor(len(commands)) as pool:
        return list(pool.map(lambda argv: symloss(*argv, cache=cache), commands))


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="session")
def session(tmp_path_factory):
    """The session's ``$SYMLOSS_CACHE`` (the tiny dataset, built by the CLI, and a cheap SFT reference),
    and the output of ``symloss zoo``, run beside the build."""
    from symloss import bench
    from symloss.bench import _reference

    root = tmp_path_factory.mktemp("symloss-cache")
    build, zoo = side_by_side(("data", "build", "hopper", "noisy", "--n-pairs", N_PAIRS, "--seed", "0",
                               "--no-progress"), ("zoo",), cache=root)
    assert f"hopper/noisy: {N_PAIRS} pairs" in ok(build)
    ds = bench.build_dataset("hopper", "noisy", n_pairs=int(N_PAIRS), cache_dir=root, progress=False)  # cached
    spec = bench.spec_for_dataset(ds)
    fit = bench.fit_reference

    def cheap(spec, ds, **kw):
        return fit(spec, ds, **{**kw, "steps": 5})

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_reference, "fit_reference", cheap)  # what load_reference calls
        bench.load_reference(ds, spec, cache_dir=root)
    return root, zoo


@pytest.fixture(scope="session")
def cache(session):
    return session[0]


@pytest.fixture(scope="module")
def run(cache, tmp_path_factory):
    """One tiny search (generations 0-1) in ``--run-dir``; then, side by side, ``--resume`` to generation 2,
    ``eval`` of a zoo loss and a copy of the first best.json, and ``export --format trl`` of that copy."""
    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    first = symloss("search", *TINY_SEARCH, "--generations", "1", "--run-dir", str(run_dir), cache=cache)
    ok(first)
    artefact = run_dir.parent / "first-best.json"
    shutil.copy(run_dir / "best.json", artefact)
    script = run_dir.parent / "train_best.py"
    resumed, evaluated, exported = side_by_side(
        ("search", "--resume", str(run_dir), "--generations", "2", "--no-progress"),
        ("eval", "dpo", str(artefact), "--n-pairs", N_PAIRS, "--protocol", "search", "--steps", "2", "--episodes",
         "1", "--seeds", "1", "--first-seed", "100", "--lr", "1e-3", "--no-progress"),
        ("export", str(artefact), "--format", "trl", "--out", str(script), "--model", "my/model"), cache=cache)
    return {"dir": run_dir, "first": first, "resumed": resumed, "artefact": artefact, "eval": evaluated,
            "script": script, "export": exported}


def test_search_with_run_dir_writes_the_artefacts_and_the_options(run):
    run_dir = run["dir"]
    out = ok(run["first"])
    assert f"run directory {run_dir}" in out and "hall of fame" in out
    for name in ("config.json", "checkpoint.json", "log.jsonl", "best.json", "best.tex", "best.py",
                 "hall_of_fame.csv"):
        assert (run_dir / name).is_file(), name
    stored = json.loads((run_dir / "config.json").read_text())
    config = {**stored, **stored["train"]}  # the protocol's fields (lr) are stored under "train"
    assert {k: config[k] for k in ("n_pairs", "population", "parsimony", "lr", "beta", "constant_range",
                                   "init_depth", "selection", "temporal", "seed")} == {
        "n_pairs": 64, "population": 4, "parsimony": 0.01, "lr": 1e-3, "beta": 0.5, "constant_range": [-2.0, 2.0],
        "init_depth": [1, 3], "selection": "nsga2", "temporal": False, "seed": 3}


def test_resume_continues_the_run(run):
    run_dir = run["dir"]
    assert f"run directory {run_dir}" in ok(run["resumed"])
    generations = [json.loads(line)["generation"] for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert generations == sorted(set(generations)) and generations[-1] == 2


def test_eval_scores_a_zoo_loss_and_a_search_artefact(run):
    out = ok(run["eval"])
    assert "protocol search (2 steps), seeds [100], fitness return" in out
    assert "| dpo |" in out and f"| {run['artefact']} |" in out
    assert out.count("| ok |") == 2


def test_export_writes_a_trl_script_and_refuses_to_overwrite_it(run, capsys):
    script = run["script"]
    assert f"wrote {script}" in ok(run["export"])
    text = script.read_text()
    assert "MirrorLoss.from_dict" in text and "'my/model'" in text
    compile(text, str(script), "exec")  # syntax check only; the script is not run
    assert main(["export", str(run["artefact"]), "--format", "latex", "--out", str(script)]) == 2
    assert script.read_text() == text
    assert capsys.readouterr().err.splitlines() == [
        f"symloss export: error: --out {script}: the file exists and was left untouched; pass --force "
        "(force=True) to overwrite it, or choose another file"]


@pytest.mark.parametrize("fmt", ["latex", "python", "json", "trl"])
def test_export_each_format_to_stdout(run, fmt, capsys):
    run_dir = run["dir"]
    assert main(["export", str(run_dir / "best.json"), "--format", fmt]) == 0
    out = capsys.readouterr().out
    best = load_loss(run_dir)
    if fmt == "json":
        assert load_loss(json.loads(out)) == best
    else:
        assert {"latex": "m(u) =", "python": "def mirror(", "trl": "MirrorDPOTrainer"}[fmt] in out


def test_export_force_overwrites(run, tmp_path, capsys):
    run_dir = run["dir"]
    out = tmp_path / "nested" / "best.tex"
    assert main(["export", str(run_dir), "--out", str(out)]) == 0
    out.write_text("stale")
    assert main(["export", str(run_dir), "--out", str(out), "--force", "--format", "json"]) == 0
    assert load_loss(out) == load_loss(run_dir)
    assert [p.name for p in out.parent.iterdir()] == ["best.tex"]  # no temporary file left behind


def test_a_new_search_refuses_a_directory_holding_a_run(run, capsys):
    run_dir = run["dir"]
    before = (run_dir / "checkpoint.json").read_text()
    assert main(["search", *TINY_SEARCH, "--run-dir", str(run_dir)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"symloss search: error: --run-dir {run_dir}: already holds a run; continue it with "
        f"`symloss search --resume {run_dir}` or give a new directory")
    assert (run_dir / "checkpoint.json").read_text() == before


def test_zoo_prints_every_loss(session):
    out = ok(session[1])
    for name in LOSSES:
        assert f"{name}:\n" in out


@pytest.mark.parametrize("argv", [[], ["search"], ["confirm"], ["data"], ["data", "build"], ["eval"], ["export"], ["zoo"]])
def test_help_of_each_command_is_plain_text(argv, capsys):
    with pytest.raises(SystemExit) as done:
        main([*argv, "--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0 and out.startswith(f"usage: {' '.join(['symloss', *argv])}")
    assert "``" not in out and ":class:" not in out
    if not argv:
        assert all(command in out for command in ("search", "confirm", "data", "eval", "export", "zoo"))
    if argv == ["search"]:
        assert "Benchmark environment: hopper or tla" in out and "--constant-range A,B" in out
