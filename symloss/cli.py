"""The ``symloss`` command: ``search``, ``data build``, ``eval``, ``export`` and ``zoo``.

``symloss search`` with no arguments is the main job: a small search on Hopper ``noisy`` that finishes
in minutes on a laptop-class CPU, with a live progress display and the hall of fame printed at the end.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from symloss._cli_config import add_config_options, config_kwargs

log = logging.getLogger("symloss")


def _search_parser(subparsers: argparse._SubParsersAction) -> None:
    from symloss.search import SearchConfig

    p = subparsers.add_parser("search", help="evolve MPO losses on a preference benchmark (the main job)",
                              description="Search closed-form MPO losses with genetic programming.")
    add_config_options(p, SearchConfig, skip=("run_dir", "ray_address"))
    p.add_argument("--run-dir", default=None, help="run directory (default: runs/search-<date>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR", default=None, help="continue the run in RUN_DIR")
    p.add_argument("--address", dest="ray_address", default=None, help="Ray cluster address (with --executor ray)")
    p.add_argument("--no-progress", action="store_true", help="no live progress display")
    p.set_defaults(func=run_search)


def run_search(args: argparse.Namespace) -> int:
    from symloss.search import LossSearch, SearchConfig

    kwargs = config_kwargs(args, SearchConfig)
    progress = not args.no_progress
    if args.resume:
        search = LossSearch.resume(args.resume, progress=progress, **kwargs)
    else:
        run_dir = args.run_dir or f"runs/search-{time.strftime('%Y%m%d-%H%M%S')}"
        search = LossSearch(SearchConfig(**kwargs, run_dir=run_dir), progress=progress)
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
    print(f"\nartefacts in {run_dir}: best.json best.tex best.py hall_of_fame.csv fitness.png pareto.png mirror.png")
    return 0


def _print_hall_of_fame(search) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="hall of fame")
    for column in ("rank", "fitness", "std", "complexity", "expression"):
        table.add_column(column)
    for _, row in search.hall_of_fame_.head(10).iterrows():
        table.add_row(str(row["rank"]), f"{row['fitness_mean']:.4g}", f"{row['fitness_std']:.3g}",
                      str(row["complexity"]), row["expression"])
    console = Console()
    console.print(table)
    if search.best_ is not None:
        console.print("best loss (LaTeX):\n" + search.best_.latex(), markup=False)


def _eval_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="train and score losses (zoo names or artefact files) on a benchmark")
    p.add_argument("losses", nargs="+", help="zoo names (dpo, orpo, ...) or artefact paths (best.json, run dirs)")
    p.add_argument("--env", default="hopper")
    p.add_argument("--dataset", default="noisy")
    p.add_argument("--seeds", default="100,101,102", help="training seeds, comma-separated")
    p.add_argument("--budget", default="final", choices=("search", "final"), help="training budget")
    p.add_argument("--fitness", default="return", choices=("return", "offline"))
    p.add_argument("--steps", type=int, default=None, help="override the budget's training steps")
    p.add_argument("--episodes", type=int, default=None, help="override the budget's evaluation episodes")
    p.add_argument("--lr", type=float, default=None,
                   help="Adam learning rate (default: 1e-4 for the search budget, 3e-4 for final, as in "
                        "paper_repro/bench_baselines.py)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_eval)


def _load_any(name: str):
    """A zoo name, a JSON artefact or a run directory (its best.json) as a MirrorLoss; never evaluates code."""
    from symloss.integrations._artefact import load_loss

    return load_loss(name)


def run_eval(args: argparse.Namespace) -> int:
    from symloss.search._train_fitness import TrainerFitness
    from symloss.train import BUDGETS, TrainConfig

    losses = [_load_any(name) for name in args.losses]
    budget = BUDGETS[args.budget]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    lr = args.lr if args.lr is not None else (3e-4 if args.budget == "final" else 1e-4)
    config = TrainConfig(steps=args.steps or budget.steps, batch_size=budget.batch_size, lr=lr,
                         episodes=args.episodes or budget.episodes, fitness=args.fitness, device=args.device)
    fitness = TrainerFitness(env=args.env, dataset=args.dataset, train_config=config, seeds=seeds,
                             progress=not args.no_progress, train_progress=not args.no_progress)
    start = time.perf_counter()
    results = fitness(losses)
    print(f"{args.env}/{args.dataset}, budget {args.budget} ({config.steps} steps), seeds {seeds}, "
          f"fitness {args.fitness}, {time.perf_counter() - start:.0f} s")
    print("| loss | fitness mean | std over seeds | status |\n|---|---|---|---|")
    for name, result in zip(args.losses, results, strict=True):
        status = "ok" if result.ok else result.reason
        print(f"| {name} | {result.mean:.2f} | {result.std:.2f} | {status} |")
    return 0


def _export_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="export a loss artefact as LaTeX, Python, JSON or a TRL script")
    p.add_argument("artefact", help="a best.json, a run directory, or a zoo name")
    p.add_argument("--format", dest="fmt", default="latex", help="latex | python | json | trl")
    p.add_argument("--out", default=None, help="write to this file instead of standard output")
    p.add_argument("--model", default=None, help="(trl) default Hugging Face model id of the script")
    p.add_argument("--dataset", default=None, help="(trl) default Hugging Face dataset id of the script")
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from symloss.integrations._export_cli import export_artefact

    extra = {k: v for k, v in (("model", args.model), ("dataset", args.dataset)) if v is not None}
    text = export_artefact(_load_any(args.artefact), args.fmt, args.out, **extra)
    if args.out is None:
        print(text)
    else:
        print(f"wrote {args.out}")
    return 0


def _zoo_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("zoo", help="print the baseline zoo's losses as formulas")
    p.set_defaults(func=run_zoo)


def run_zoo(args: argparse.Namespace) -> int:
    from symloss.objectives import LOSSES

    for name, make in LOSSES.items():
        print(f"{name}:\n{make().latex()}\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="symloss", description="Symbolic discovery of preference losses.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)
    _search_parser(sub)
    data = sub.add_parser("data", help="MuJoCo preference datasets")
    from symloss.bench import cli as bench_cli

    bench_cli.register(data.add_subparsers(dest="data_command", required=True))
    _eval_parser(sub)
    _export_parser(sub)
    _zoo_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return args.func(args)
    except ValueError as exc:  # bad input: a clear message, no traceback
        print(f"symloss {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
