"""The ``symloss`` command: ``search``, ``confirm``, ``data build``, ``eval``, ``export`` and ``zoo``.

``symloss search`` with no arguments is the main job: a small multi-fidelity search on Hopper ``noisy`` beside
tuned baselines, then a held-out confirmation of the best discovered losses against the best baselines on fresh
seeds and start states (``report.md`` with the verdict), with a live progress display and the hall of fame
printed at the end. ``symloss confirm RUN_DIR`` reruns that confirmation with more seeds or on other data.

Every mistake in the input ends the command with one line ``symloss <command>: error: <what and the fix>``
and exit code 2; ``-v`` adds the traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import traceback
from pathlib import Path
from typing import NoReturn

from symloss import _cli_confirm
from symloss._cli_config import add_config_options, config_kwargs
from symloss.bench import cli as bench_cli
from symloss.integrations import export_artefact, load_loss
from symloss.objectives import LOSSES
from symloss.search import LossSearch, SearchConfig
from symloss.train import BenchmarkFitness, TrainConfig

log = logging.getLogger("symloss")

USER_ERRORS = (ValueError, OSError, ImportError)
"""What bad input raises: ValueError covers ConfigError, FormulaError, ArtefactError and the search's run
directory errors; OSError a missing, unreadable or read-only file; ImportError a missing optional extra."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (the full usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _verbose_option() -> argparse.ArgumentParser:
    """``-v`` accepted after the subcommand too (``symloss eval dpo -v``); set only when given."""
    parent = _Parser(add_help=False)
    parent.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log progress details; tracebacks on errors")
    return parent


def _protocol_options(parser: argparse.ArgumentParser) -> None:
    """The TrainConfig options, the same for every command that trains: each overrides the --protocol's."""
    group = parser.add_argument_group("training protocol (each option overrides the --protocol preset's value)")
    add_config_options(group, TrainConfig, default_text="from --protocol")


def _search_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("search", help="evolve MPO losses on a preference benchmark (the main job)",
                              description="Search closed-form MPO losses with genetic programming.",
                              parents=[_verbose_option()])
    add_config_options(p, SearchConfig, skip=("run_dir", "ray_address", "train"))
    _protocol_options(p)
    p.add_argument("--run-dir", default=None,
                   help="new (or empty) run directory (default: runs/search-<date>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR", default=None,
                   help="continue the run in RUN_DIR (only --generations, --device, --executor, --address "
                        "may change)")
    p.add_argument("--address", dest="ray_address", default=None, help="Ray cluster address (with --executor ray)")
    p.add_argument("--no-progress", action="store_true", help="no live progress display")
    p.set_defaults(func=run_search)


def _new_run_dir(path: str) -> str:
    """``path`` if a new run may be written there: it does not exist or is an empty directory."""
    where = Path(path)
    if where.is_file():
        raise FileExistsError(f"--run-dir {path}: is a file; give a new directory")
    if where.is_dir() and any(where.iterdir()):
        if (where / "config.json").exists():
            raise FileExistsError(f"--run-dir {path}: already holds a run; continue it with "
                                  f"`symloss search --resume {path}` or give a new directory")
        raise FileExistsError(f"--run-dir {path}: the directory is not empty (nothing was written); give a "
                              "new or empty directory")
    return path


def run_search(args: argparse.Namespace) -> int:
    kwargs = {**config_kwargs(args, SearchConfig), **config_kwargs(args, TrainConfig)}
    kwargs.pop("run_dir", None)
    progress = not args.no_progress
    if args.resume:
        if args.run_dir is not None:
            raise ValueError(f"--resume {args.resume} --run-dir {args.run_dir}: give --resume RUN_DIR to "
                             "continue a run or --run-dir for a new one, not both")
        search = LossSearch.resume(args.resume, progress=progress, **kwargs)
    else:
        config = SearchConfig.from_dict({**kwargs, "run_dir": args.run_dir or
                                         f"runs/search-{time.strftime('%Y%m%d-%H%M%S')}"})
        _new_run_dir(config.run_dir)
        search = LossSearch(config, progress=progress)
    run_dir = search.config.run_dir
    print(f"symloss search: {search.config.env}/{search.config.dataset}, population {search.config.population}, "
          f"{search.config.generations} generations, run directory {run_dir}")
    try:
        search.fit()
    except KeyboardInterrupt:
        print(f"\ninterrupted: every completed generation is checkpointed in {run_dir}\n"
              f"continue with: symloss search --resume {run_dir}")
        return 130
    _print_hall_of_fame(search)
    print(f"\nartefacts in {run_dir}: best.json best.tex best.py hall_of_fame.csv fitness.png pareto.png mirror.png"
          + (" report.md confirm.png contenders.json" if getattr(search, "confirmation_", None) is not None else ""))
    return 0


def _print_hall_of_fame(search) -> None:
    import math

    from rich.console import Console
    from rich.table import Table

    table = Table(title="hall of fame (search fitness: selected on it, not a result; see report.md)")
    for column in ("rank", "kind", "rung", "seeds", "fitness", "std", "95% CI", "loss", "family"):
        table.add_column(column)
    hof = search.hall_of_fame_
    shown = hof[hof["kind"] == "discovered"].head(10)
    shown = hof.loc[sorted([*shown.index, *hof[hof["kind"] == "baseline"].head(3).index])]
    for _, row in shown.iterrows():
        ci = "" if math.isnan(row["ci_low"]) else f"[{row['ci_low']:.4g}, {row['ci_high']:.4g}]"
        forms = f" ({row['forms']} forms)" if row["forms"] > 1 else ""
        what = row["name"] if row["kind"] == "baseline" else row["expression"] + forms
        table.add_row(str(row["rank"]), row["kind"], str(row["rung"]), str(row["seeds"]), f"{row['fitness_mean']:.4g}",
                      f"{row['fitness_std']:.3g}", ci, what, row["family"])
    console = Console(width=None if sys.stdout.isatty() else 160)  # a log file gets the whole table
    console.print(table)
    if search.best_ is not None:
        console.print("best discovered loss (LaTeX):\n" + search.best_.latex(), markup=False)
    if getattr(search, "confirmation_", None) is not None:
        console.print("\n" + search.confirmation_.verdict.line(), markup=False)
        if getattr(search, "reference_score_", None) is not None:
            console.print(f"(the SFT reference without training scores {search.reference_score_:.4g} on the same "
                          "start states)", markup=False)
    elif search.config.confirm and search.config.executor == "ray":
        console.print("\nno held-out confirmation: the Ray executor trains the search fidelity only (one rung); "
                      f"run `symloss confirm {search.config.run_dir}` on this machine for the verdict", markup=False)


def _eval_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="train and score losses (zoo names or artefact files) on a benchmark",
                              description="Train each loss with a training protocol (default: final) and "
                                          "score it; one row per loss.", parents=[_verbose_option()])
    p.add_argument("losses", nargs="+", help="zoo names (dpo, orpo, ...) or artefact paths (best.json, run dirs)")
    add_config_options(p, SearchConfig, only=("env", "dataset", "n_pairs", "protocol"), concrete=True,
                       defaults={"protocol": "final"})
    _protocol_options(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    protocol = TrainConfig.preset(args.protocol, env=args.env, **config_kwargs(args, TrainConfig))
    fitness = BenchmarkFitness(env=args.env, dataset=args.dataset, protocol=protocol,
                               dataset_overrides={} if args.n_pairs is None else {"n_pairs": args.n_pairs},
                               progress=not args.no_progress, train_progress=not args.no_progress)
    fitness.validate()  # a bad name or size fails before any work
    losses = [load_loss(name) for name in args.losses]  # zoo names, JSON artefacts, run dirs: never evaluated
    start = time.perf_counter()
    result = fitness(losses)
    scored = "" if protocol.horizon is None else f", scored on the first {protocol.horizon} steps"
    print(f"{args.env}/{args.dataset}, protocol {args.protocol} ({protocol.steps} steps{scored}), seeds "
          f"{list(result.seeds)}, fitness {protocol.fitness}, {time.perf_counter() - start:.0f} s")
    print("| loss | fitness mean | std over seeds | status |\n|---|---|---|---|")
    for name, mean, std, status, reason in zip(args.losses, result.fitness.tolist(), result.fitness_std.tolist(),
                                               result.status, result.reason, strict=True):
        print(f"| {name} | {mean:.2f} | {std:.2f} | {status if status == 'ok' else reason} |")
    return 0


def _export_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="export a loss artefact as LaTeX, Python, JSON or a TRL script",
                              parents=[_verbose_option()])
    p.add_argument("artefact", help="a best.json, a run directory, or a zoo name")
    p.add_argument("--format", dest="fmt", default="latex", metavar="{latex,python,json,trl}",
                   help="what to write (default: latex)")
    p.add_argument("--out", default=None, help="write to this file instead of standard output")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.add_argument("--model", default=None, help="(trl) default Hugging Face model id of the script")
    p.add_argument("--dataset", default=None, help="(trl) default Hugging Face dataset id of the script")
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    extra = {k: v for k, v in (("model", args.model), ("dataset", args.dataset)) if v is not None}
    text = export_artefact(args.artefact, args.fmt, args.out, force=args.force, **extra)
    if args.out is None:
        print(text, end="")
    else:
        print(f"wrote {args.out}")
    return 0


def _zoo_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("zoo", help="print the baseline zoo's losses as formulas", parents=[_verbose_option()])
    p.set_defaults(func=run_zoo)


def run_zoo(args: argparse.Namespace) -> int:
    for name, make in LOSSES.items():
        print(f"{name}:\n{make().latex()}\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="symloss", description="Symbolic discovery of preference losses.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details; tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)
    _search_parser(sub)
    data = sub.add_parser("data", help="MuJoCo preference datasets")
    bench_cli.register(data.add_subparsers(dest="data_command", required=True), parents=[_verbose_option()])
    _eval_parser(sub)
    _cli_confirm.register(sub, parents=[_verbose_option()])
    _export_parser(sub)
    _zoo_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return args.func(args)
    except USER_ERRORS as exc:  # bad input: one line with the fix; the traceback only with -v
        if args.verbose:
            traceback.print_exception(exc)
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"{_prog(args)}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{_prog(args)}: interrupted", file=sys.stderr)
        return 130


def _prog(args: argparse.Namespace) -> str:
    return " ".join(["symloss", args.command, *([args.data_command] if args.command == "data" else [])])


if __name__ == "__main__":
    sys.exit(main())
