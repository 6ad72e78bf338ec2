"""Common mistakes on the command line: one line naming the problem and the fix, exit code 2, no work done.

Run in-process through ``symloss.cli.main`` (each case fails before any dataset, reference or training).
"""

from __future__ import annotations

import json

import pytest
import torch

from symloss.cli import main
from symloss.objectives import dpo
from symloss.search import LossSearch

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")


def one_line_error(argv: list[str], capsys) -> str:
    """Run ``symloss ARGV``; check exit code 2, empty stdout and a single stderr line; return that line."""
    code = None
    try:
        code = main(argv)
    except SystemExit as done:  # argparse usage errors
        code = done.code
    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == "" and "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(("argv", "line"), [
    (["eval", "dpoo"], "symloss eval: error: loss='dpoo': not a zoo loss and no such file or directory"),
    (["eval", "dpoo"], "did you mean the zoo loss 'dpo'?"),
    (["export", "missing.json"], "symloss export: error: missing.json: no such file or directory; pass a loss JSON file"),
    (["search", "--constant-range", "1"], "symloss search: error: argument --constant-range: '1': expected 2 "
                                          "comma-separated values, got 1; e.g. --constant-range=-1.0,1.0"),
    (["search", "--constant-range", "a,b"], "argument --constant-range: 'a,b': expected comma-separated float"),
    (["search", "--init-depth", "1,2,3"], "argument --init-depth: '1,2,3': expected 2 comma-separated values"),
    (["search", "--lr", "inf"], "symloss search: error: lr=inf: must be a finite number > 0"),
    (["search", "--beta", "inf"], "symloss search: error: beta=inf: must be a finite number > 0"),
    (["search", "--parsimony", "inf"], "symloss search: error: parsimony=inf: must be a finite number >= 0"),
    (["search", "--parsimony", "nan"], "parsimony=nan: must be a finite number >= 0"),
    (["search", "--population", "2"], "elite=2: must be an integer in [0, 1] (fewer than population); lower "
                                      "elite or raise population"),
    (["search", "--selection", "nsga"], "selection='nsga': must be one of ['parsimony', 'nsga2']; did you mean "
                                        "'nsga2'?"),
    (["search", "--env", "hoper"], "env='hoper': unknown environment; accepted: hopper, tla; did you mean"),
    (["search", "--n-pairs", "0"], "n_pairs=0: must be an integer >= 1"),
    (["search", "--population", "many"], "argument --population: invalid int value: 'many'"),
    (["search", "--resume", "a", "--run-dir", "b"], "--resume a --run-dir b: give --resume RUN_DIR to continue a "
                                                    "run or --run-dir for a new one, not both"),
    (["search", "--resume", "no/such/run"], "run_dir='no/such/run': not a symloss run directory"),
    (["eval", "dpo", "--steps", "0"], "symloss eval: error: steps=0: must be an integer >= 1"),
    (["eval", "dpo", "--episodes", "0"], "symloss eval: error: episodes=0: must be an integer >= 1"),
    (["eval", "dpo", "--lr", "inf"], "symloss eval: error: lr=inf: must be a finite number > 0"),
    (["eval", "dpo", "--env", "hoper"], "symloss eval: error: env='hoper': unknown environment"),
    (["eval", "dpo", "--dataset", "noisey"], "variant='noisey': unknown variant"),
    (["eval", "dpo", "--device", "tpu"], "device='tpu': must be 'cpu', 'cuda' or 'cuda:<index>'"),
    (["eval", "dpo", "--seeds", "1,a"], "argument --seeds: invalid int value: '1,a'"),
    (["eval", "dpo", "--seeds", "0"], "symloss eval: error: seeds=0: must be an integer >= 1"),
    (["eval", "dpo", "--first-seed", "-1"], "symloss eval: error: first_seed=-1: must be an integer >= 0"),
    (["eval", "dpo", "--protocol", "fianl"], "symloss eval: error: protocol='fianl': must be one of ['search', "
                                             "'final']; did you mean 'final'?"),
    (["search", "--protocol", "serch"], "symloss search: error: protocol='serch': must be one of"),
    (["export", "dpo", "--format", "latx"], "symloss export: error: format='latx': must be one of ['latex', "
                                            "'python', 'json', 'trl']; did you mean 'latex'?"),
    (["data", "build", "hopper", "shufled"], "symloss data build: error: variant='shufled': unknown variant"),
    (["data", "build", "hopper", "shufled"], "did you mean 'shuffled'?"),
    (["data", "build", "hoper"], "env='hoper': unknown environment"),
    (["data", "build", "hopper", "noisy", "--n-pairs", "0"], "n_pairs=0: must be an integer >= 1"),
    (["data", "build", "hopper", "noisy", "--flip-fraction", "2"], "flip_fraction=2.0: must be a finite number "
                                                                   "in [0, 1]"),
    (["nonsense"], "symloss: error: argument command: invalid choice: 'nonsense'"),
])
def test_mistake_gives_one_line_with_the_fix(argv, line, capsys):
    assert line in one_line_error(argv, capsys)


@NO_CUDA
@pytest.mark.parametrize("argv", [["search", "--device", "cuda"], ["eval", "dpo", "--device", "cuda:0"]])
def test_cuda_on_a_machine_without_it_fails_at_once(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a run directory would land here: none may be created
    line = one_line_error(argv, capsys)
    assert f"CUDA is not available here; use device='cpu' (torch {torch.__version__} sees no GPU)" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv", [["-v", "eval", "dpoo"], ["eval", "dpoo", "-v"], ["eval", "--verbose", "dpoo"]])
def test_verbose_adds_the_traceback_before_or_after_the_command(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last)") and "ArtefactNotFoundError" in err
    assert err.splitlines()[-1].startswith("symloss eval: error: loss='dpoo'")


def test_a_new_search_leaves_a_non_empty_directory_alone(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    line = one_line_error(["search", "--run-dir", str(tmp_path)], capsys)
    assert line == (f"symloss search: error: --run-dir {tmp_path}: the directory is not empty (nothing was "
                    "written); give a new or empty directory")
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    line = one_line_error(["search", "--run-dir", str(tmp_path / "notes.txt")], capsys)
    assert line.endswith("notes.txt: is a file; give a new directory")


def test_resume_errors_of_the_search_are_one_line(monkeypatch, capsys):
    def read_only(run_dir, **kwargs):
        raise PermissionError(f"run_dir={run_dir!r}: not writable; copy it somewhere writable and resume the copy")

    monkeypatch.setattr(LossSearch, "resume", staticmethod(read_only))
    line = one_line_error(["search", "--resume", "/runs/x"], capsys)
    assert line == ("symloss search: error: run_dir='/runs/x': not writable; copy it somewhere writable and "
                    "resume the copy")


def test_resume_refuses_options_that_would_change_the_run(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"population": 4, "elite": 1}))
    line = one_line_error(["search", "--resume", str(tmp_path), "--population", "8"], capsys)
    assert "resume: cannot change ['population']; only" in line


def test_exporting_a_formula_that_cannot_be_written_is_one_line(tmp_path, capsys):
    bad = tmp_path / "best.json"
    bad.write_text(json.dumps({**dpo().to_dict(), "mirror": "log(0) + u"}))
    out = tmp_path / "loss.py"
    line = one_line_error(["export", str(bad), "--format", "python", "--out", str(out)], capsys)
    assert line.startswith(f"symloss export: error: {bad}: ")
    assert not out.exists()


def test_export_out_must_not_be_a_directory(tmp_path, capsys):
    line = one_line_error(["export", "dpo", "--out", str(tmp_path)], capsys)
    assert line == (f"symloss export: error: --out {tmp_path}: is a directory; give a file name, e.g. "
                    f"{tmp_path / 'loss.tex'}")


def _help(command: str, capsys, monkeypatch) -> str:
    monkeypatch.setenv("COLUMNS", "100")  # the same wrapping for both commands
    with pytest.raises(SystemExit):
        main([command, "--help"])
    return capsys.readouterr().out


def _options(section: str) -> dict[str, str]:
    """``--flag`` -> its help text (wrapping removed), from a block of argparse's help output."""
    options: dict[str, str] = {}
    for line in section.splitlines():
        if line.startswith("  --"):
            flag, _, text = line.strip().partition("  ")
            current = options.setdefault(flag.split()[0].rstrip(","), "")
            options[flag.split()[0].rstrip(",")] = current + text.strip()
        elif options and line.startswith("      "):
            options[next(reversed(options))] += " " + line.strip()
    return options


def test_search_and_eval_list_the_same_protocol_options_with_the_same_defaults(capsys, monkeypatch):
    from dataclasses import fields

    from symloss.train import TrainConfig

    helps = {command: _help(command, capsys, monkeypatch) for command in ("search", "eval")}
    title = "training protocol (each option"
    sections = {command: text[text.index(title):] for command, text in helps.items()}
    search, evaluate = _options(sections["search"]), _options(sections["eval"])
    flags = {"--" + f.name.replace("_", "-") for f in fields(TrainConfig)}
    assert set(search) == set(evaluate) == flags
    assert search == evaluate
    assert all(text.endswith("(default: from --protocol)") for text in search.values())
    assert "Adam learning rate; > 0." in search["--lr"]
    protocol = {command: _options(text[:text.index(title)])["--protocol"] for command, text in helps.items()}
    assert protocol["search"].endswith("(default: search)") and protocol["eval"].endswith("(default: final)")
