"""Layers talk through public names, and only downwards (shared/ARCHITECTURE.md).

Every ``.py`` file in ``symloss/``, ``benchmarks/`` and ``paper_repro/`` is parsed (never imported), and
each of its imports of symloss (at module top or inside a function) is checked:

- no private module or name of another package: ``from symloss.x._y import z``, ``import symloss.x._y``
  and ``from symloss.x import _y`` are allowed only in files of package ``symloss/x`` itself;
- the layer order ``expr < objectives < bench < train < search < integrations < cli``: a module of
  ``symloss/`` imports only its own layer and the layers before it; ``symloss/validation.py`` is a leaf
  that every layer may use (and that imports no other symloss module). Scripts in ``benchmarks/`` and
  ``paper_repro/`` sit above every layer.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("expr", "objectives", "bench", "train", "search", "integrations", "cli")
CLI_MODULES = {"cli", "_cli_config", "_cli_confirm", "__main__"}
"""Modules of the top-level package ``symloss`` that make up the ``cli`` layer."""

ALLOWED: set[tuple[str, str]] = set()
"""(file, imported module) pairs still to fix; each with a TODO naming the file. Empty: nothing left."""


def _files() -> list[Path]:
    return sorted(p for folder in ("symloss", "benchmarks", "paper_repro") for p in (ROOT / folder).rglob("*.py"))


def _package_and_layer(path: Path) -> tuple[str, int | None]:
    """The package a file belongs to (``symloss.search``, ``symloss``, ``scripts``) and its layer index
    (None: a script above every layer; -1: the validation leaf)."""
    rel = path.relative_to(ROOT)
    if rel.parts[0] != "symloss":
        return "scripts", None
    if len(rel.parts) == 2:
        name = rel.stem
        if name == "validation":
            return "symloss", -1
        if name in CLI_MODULES:
            return "symloss", LAYERS.index("cli")
        return "symloss", len(LAYERS)  # symloss/__init__.py: the top, imports everything (lazily)
    return f"symloss.{rel.parts[1]}", LAYERS.index(rel.parts[1])


def _target(module: str) -> tuple[str, int]:
    """The package and layer of an imported symloss module (``symloss.search._config`` -> search)."""
    parts = module.split(".")
    if len(parts) == 1:
        return "symloss", len(LAYERS)
    if parts[1] == "validation":
        return "symloss", -1
    if parts[1] in LAYERS[:-1]:
        return f"symloss.{parts[1]}", LAYERS.index(parts[1])
    return "symloss", LAYERS.index("cli") if parts[1] in CLI_MODULES else len(LAYERS)


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, imported names) of every absolute import of symloss in ``path``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names if a.name.split(".")[0] == "symloss"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "symloss":
            out += [(node.lineno, f"symloss.{a.name}", []) for a in node.names]  # from symloss import bench
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("symloss."):
            out.append((node.lineno, node.module, [a.name for a in node.names]))
    return out


def violations(path: Path) -> list[str]:
    """What ``path`` imports against the rules above, one line each (file:line: what)."""
    package, layer = _package_and_layer(path)
    rel, found = path.relative_to(ROOT).as_posix(), []
    for line, module, names in _imports(path):
        target, target_layer = _target(module)
        private = [p for p in module.split(".")[1:] if _private(p)] + [n for n in names if _private(n)]
        where = f"{rel}:{line}: {module}" + (f" import {', '.join(names)}" if names else "")
        if (rel, module) in ALLOWED:
            continue
        if private and package != target:
            found.append(f"{where}: private name {private[0]!r} of package {target}")
        if layer == -1:
            found.append(f"{where}: symloss.validation is a leaf and imports no other symloss module")
        elif layer is not None and target_layer > layer:
            found.append(f"{where}: {package} may not import the later layer {target}")
    return found


@pytest.mark.parametrize("path", _files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_imports_follow_the_layers(path):
    found = violations(path)
    assert not found, "\n".join(found)


def test_the_checker_catches_each_kind_of_violation(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    cases = {
        "benchmarks/x.py": ("from symloss.search._config import SearchConfig\n", "private name '_config'"),
        "paper_repro/y.py": ("import symloss.bench._envs\n", "private name '_envs'"),
        "symloss/search/z.py": ("from symloss.expr import _constant\n", "private name '_constant'"),
        "symloss/bench/w.py": ("def f():\n    from symloss.train import TrainConfig\n",
                               "symloss.bench may not import the later layer symloss.train"),
        "symloss/expr/v.py": ("from symloss import cli\n", "may not import the later layer symloss"),
        "symloss/validation.py": ("from symloss.expr import parse_formula\n", "is a leaf"),
    }
    for rel, (source, message) in cases.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
        found = violations(path)
        assert len(found) == 1 and message in found[0], (rel, found)
    fine = tmp_path / "symloss/search/ok.py"
    fine.write_text("from symloss.search._config import SearchConfig\nfrom symloss.train import TrainConfig\n"
                    "from symloss.validation import check_range\n")
    assert violations(fine) == []
