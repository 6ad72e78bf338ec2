"""Run directories: one search at a time, nothing written before validation, read-only fails early, kill -9."""

from __future__ import annotations

import errno
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from symloss.search import LossSearch, MirrorTargetFitness, RunDirError, RunDirLocked, SearchConfig
from symloss.train import STORED_BEFORE
from symloss.validation import ConfigError

TARGET = "u + tanh(u)"
SMALL = {"population": 8, "generations": 2, "seed": 3, "progress": False}
REPO = Path(__file__).resolve().parents[1]


class Counting:
    """MirrorTargetFitness that counts its calls."""

    def __init__(self) -> None:
        self.inner, self.calls = MirrorTargetFitness(TARGET), 0

    def __call__(self, losses):
        self.calls += 1
        return self.inner(losses)


def test_a_second_search_on_a_locked_run_dir_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    refused = []

    def fitness(losses):
        if not refused:  # while the first search holds the directory, a resume of it is tried
            with pytest.raises(RunDirLocked) as info:
                LossSearch.resume(run_dir, fitness=MirrorTargetFitness(TARGET), progress=False).fit()
            refused.append(str(info.value))
        return MirrorTargetFitness(TARGET)(losses)

    first = LossSearch(**SMALL, fitness=fitness, run_dir=str(run_dir)).fit()
    assert str(run_dir) in refused[0] and f"pid {os.getpid()}" in refused[0] and "--resume" in refused[0]
    full = LossSearch(**SMALL, fitness=MirrorTargetFitness(TARGET), run_dir=str(tmp_path / "other")).fit()
    assert first.hall_of_fame_.equals(full.hall_of_fame_)  # the refused attempt changed nothing
    LossSearch.resume(run_dir, fitness=MirrorTargetFitness(TARGET), progress=False, generations=3).fit()


def test_the_lock_is_held_across_processes_and_names_the_holder(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import fcntl, os, sys
            fd = os.open({str(run_dir / 'run.lock')!r}, os.O_RDWR | os.O_CREAT)
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, str(os.getpid()).encode())
            print("locked", flush=True)
            sys.stdin.read()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirLocked, match=f"in use by another search \\(pid {holder.pid}"):
            LossSearch(**SMALL, fitness=MirrorTargetFitness(TARGET), run_dir=str(run_dir)).fit()
        assert not (run_dir / "config.json").exists()
    finally:
        holder.communicate("")
    LossSearch(**SMALL, fitness=MirrorTargetFitness(TARGET), run_dir=str(run_dir)).fit()  # free again
    assert (run_dir / "checkpoint.json").exists()


@pytest.mark.parametrize("kwargs, error, message", [
    ({"env": "hoper"}, ValueError, "did you mean 'hopper'"),
    ({"dataset": "noisyy"}, ValueError, "noisyy"),
    ({"device": "cuda"}, ConfigError, "device='cuda': CUDA is not available"),
])
def test_a_bad_option_fails_before_the_run_dir_exists(tmp_path, monkeypatch, kwargs, error, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    run_dir = tmp_path / "run"
    with pytest.raises(error, match=message):
        LossSearch(**SMALL, **kwargs, run_dir=str(run_dir)).fit()  # the built-in trainer fitness
    assert not run_dir.exists()


class FailsToPrepare(Counting):
    def prepare(self) -> None:
        raise RuntimeError("dataset build crashed")


def test_a_start_that_failed_before_its_first_generation_does_not_block_a_new_start(tmp_path, caplog):
    run_dir = tmp_path / "run"
    with pytest.raises(RuntimeError, match="dataset build crashed"):
        LossSearch(**SMALL, fitness=FailsToPrepare(), run_dir=str(run_dir)).fit()
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.json", "run.lock"]
    with caplog.at_level(logging.WARNING, logger="symloss.search._rundir"):
        LossSearch(**{**SMALL, "seed": 4}, fitness=Counting(), run_dir=str(run_dir)).fit()
    assert "holds only the config.json of a start that completed no generation" in caplog.text
    assert json.loads((run_dir / "config.json").read_text())["seed"] == 4
    with pytest.raises(RunDirError, match="already holds a run"):  # a completed generation does block
        LossSearch(**SMALL, fitness=Counting(), run_dir=str(run_dir)).fit()


def _interrupted_run(run_dir: Path) -> Counting:
    fitness = Counting()
    LossSearch(**{**SMALL, "generations": 1}, fitness=fitness, run_dir=str(run_dir)).fit()
    return fitness


def test_resume_with_an_unwritable_artefact_fails_before_any_training(tmp_path):
    run_dir = tmp_path / "run"
    _interrupted_run(run_dir)
    before = (run_dir / "checkpoint.json").read_text()
    (run_dir / "hall_of_fame.csv").unlink()
    (run_dir / "hall_of_fame.csv").mkdir()  # what a read-only file does to a write, even for root
    fitness = Counting()
    with pytest.raises(RunDirError, match=r"cannot write hall_of_fame.csv \(Is a directory\); nothing was "
                                          r"trained\. Copy it somewhere writable"):
        LossSearch.resume(run_dir, fitness=fitness, progress=False, generations=3).fit()
    assert fitness.calls == 0 and (run_dir / "checkpoint.json").read_text() == before


def _writable_anyway(path: Path) -> bool:
    try:
        (path / ".probe").write_text("x")
    except OSError:
        return False
    (path / ".probe").unlink()
    return True


def test_resume_in_a_read_only_run_dir_fails_with_one_clear_error(tmp_path):
    run_dir = tmp_path / "run"
    _interrupted_run(run_dir)
    for path in [*run_dir.iterdir(), run_dir]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        if _writable_anyway(run_dir):
            pytest.skip("permissions are not enforced for this user (root): see the test above")
        fitness = Counting()
        with pytest.raises(RunDirError, match=f"run_dir={str(run_dir)!r}: cannot write .*chmod -R u\\+w"):
            LossSearch.resume(run_dir, fitness=fitness, progress=False, generations=3).fit()
        assert fitness.calls == 0
    finally:
        for path in [run_dir, *run_dir.iterdir()]:
            path.chmod(0o755 if path.is_dir() else 0o644)


def test_resume_on_a_read_only_file_system_fails_before_any_training(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    _interrupted_run(run_dir)
    real_open = os.open

    def read_only_open(path, flags, *args, **kwargs):  # EROFS for any write under run_dir, as a ro mount gives
        if str(path).startswith(str(run_dir)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only_open)
    fitness = Counting()
    with pytest.raises(RunDirError, match=r"cannot write its lock file run.lock \(Read-only file system\)"):
        LossSearch.resume(run_dir, fitness=fitness, progress=False, generations=3).fit()
    assert fitness.calls == 0


def test_a_new_start_under_a_file_is_refused_before_anything(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(RunDirError, match="cannot create it"):
        LossSearch(**SMALL, fitness=Counting(), run_dir=str(tmp_path / "file" / "run")).fit()


KILLER = """
import os, signal, sys
sys.path.insert(0, {repo!r})
from symloss.search import LossSearch, MirrorTargetFitness
import symloss.search._checkpoint as checkpoint

inner, calls = MirrorTargetFitness({target!r}), {{"fitness": 0, "write": 0}}
def fitness(losses):
    calls["fitness"] += 1
    if {where!r} == "fitness" and calls["fitness"] == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return inner(losses)
real_replace = os.replace
def replace(src, dst):  # kill -9 after the temporary checkpoint is written, before it is renamed
    if {where!r} == "write" and str(dst).endswith("checkpoint.json"):
        calls["write"] += 1
        if calls["write"] == 3:
            os.kill(os.getpid(), signal.SIGKILL)
    real_replace(src, dst)
checkpoint.os.replace = replace
LossSearch(population=8, generations=3, seed=3, progress=False, fitness=fitness, run_dir={run_dir!r}).fit()
"""


@pytest.mark.parametrize("where", ["fitness", "write"])
def test_kill_9_then_resume_gives_the_uninterrupted_hall_of_fame(tmp_path, where):
    run_dir = tmp_path / "run"
    script = KILLER.format(repo=str(REPO), target=TARGET, where=where, run_dir=str(run_dir))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr[-2000:]
    assert json.loads((run_dir / "checkpoint.json").read_text())["generation"] < 3
    resumed = LossSearch.resume(run_dir, fitness=MirrorTargetFitness(TARGET), progress=False).fit()
    full = LossSearch(population=8, generations=3, seed=3, progress=False, fitness=MirrorTargetFitness(TARGET),
                      run_dir=str(tmp_path / "full")).fit()
    assert resumed.hall_of_fame_.equals(full.hall_of_fame_)
    assert resumed.state_.rng_state == full.state_.rng_state


def test_a_run_directory_written_before_the_protocol_existed_resumes(tmp_path):
    """config.json in the flat format of the version before ``SearchConfig.train`` (tests/fixtures): the run
    resumes, and resuming gives the hall of fame of an uninterrupted run."""
    old = json.loads((REPO / "tests" / "fixtures" / "config_before_protocols.json").read_text())
    settings = {k: old[k] for k in ("population", "seed", "steps", "episodes", "fitness", "batch_size", "lr",
                                    "seeds", "device") if k in old}
    settings.update(STORED_BEFORE)  # that version trained plainly, whatever the presets say today
    run_dir = tmp_path / "run"
    LossSearch(SearchConfig.from_dict({**settings, "generations": 1, "run_dir": str(run_dir)}),
               fitness=MirrorTargetFitness(TARGET), progress=False).fit()
    (run_dir / "config.json").write_text(json.dumps({**old, "run_dir": str(run_dir)}))  # as that version wrote it
    resumed = LossSearch.resume(run_dir, fitness=MirrorTargetFitness(TARGET), progress=False, generations=2).fit()
    full = LossSearch(SearchConfig.from_dict({**settings, "generations": 2}), fitness=MirrorTargetFitness(TARGET),
                      progress=False).fit()
    assert resumed.config.train == full.config.train and resumed.hall_of_fame_.equals(full.hall_of_fame_)


def test_a_stored_protocol_without_a_later_field_reads_as_it_was_run(tmp_path):
    """A config.json written before ``sampling`` / ``ema`` / ``checkpoints`` / ``soup`` existed reads with the
    values that version trained with, whatever the presets say today; values the file has are kept."""
    from symloss.search._artefacts import read_config
    from symloss.train import TrainConfig

    train = {k: v for k, v in TrainConfig().to_dict().items() if k not in STORED_BEFORE}
    train["soup"] = 2  # written by a version that had soups: kept
    (tmp_path / "config.json").write_text(json.dumps({"population": 8, "seed": 3, "train": train}))
    stored = read_config(tmp_path)["train"]
    assert stored["sampling"] == "replacement" and stored["ema"] is None and stored["checkpoints"] == 1
    assert stored["soup"] == 2
    flat = {"population": 8, "steps": 10, "batch_size": 4, "lr": 0.01, "episodes": 2, "seeds": 1,
            "fitness": "return", "device": "cpu"}  # the format before SearchConfig.train existed
    (tmp_path / "config.json").write_text(json.dumps(flat))
    assert read_config(tmp_path)["sampling"] == "replacement"
    assert SearchConfig.from_dict(read_config(tmp_path)).train.sampling == "replacement"
