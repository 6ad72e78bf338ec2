"""The ``data build`` sub-command that symloss/cli.py mounts."""

from __future__ import annotations

import argparse

import pytest

from symloss.bench.cli import register


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="symloss data")
    register(parser.add_subparsers(dest="data_command", required=True))
    return parser


def test_build_command_builds_and_reports(tmp_path, capsys):
    args = _parser().parse_args(
        ["build", "hopper", "noisy", "--n-pairs", "12", "--cache-dir", str(tmp_path), "--no-progress"]
    )
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "hopper/noisy: 12 pairs" in out
    assert (tmp_path / "datasets").is_dir()


def test_build_command_rejects_unknown_variant(tmp_path):
    args = _parser().parse_args(["build", "hopper", "shufled", "--cache-dir", str(tmp_path)])
    with pytest.raises(ValueError, match="variant='shufled'"):
        args.func(args)
