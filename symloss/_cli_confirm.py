"""``symloss confirm RUN_DIR``: retrain a finished search's contenders on held-out seeds and write the verdict.

The contenders are the run's ``contenders.json`` (the top discovered losses and the top tuned baselines); the
protocol is the run's ``confirm_protocol`` with the options overriding it (``--seeds 20`` for more power,
``--env``/``--dataset`` for a transfer check). The seeds and start states must stay clear of every rung of the
search (the run's SearchConfig checks it). The report goes to ``RUN_DIR/report-<tag>.md`` (never overwriting).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from symloss.search import confirm, confirm_tag, markdown_table, read_run, top_contenders, write_report
from symloss.train import BenchmarkFitness
from symloss.validation import check_range


def register(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    """Add the ``confirm`` subcommand to ``subparsers``."""
    p = subparsers.add_parser(
        "confirm", parents=parents, help="retrain a search's best losses and baselines on held-out seeds",
        description="Retrain the contenders of a finished search (RUN_DIR/contenders.json) on fresh training "
                    "seeds and start states, compare the best discovered loss with the best baseline (paired "
                    "bootstrap CI), and write RUN_DIR/report-<tag>.md with the verdict.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run directory of a finished `symloss search`")
    p.add_argument("--protocol", default=None, metavar="SPEC",
                   help="protocol spec, e.g. 'final:seeds=20' (default: the run's confirm_protocol)")
    p.add_argument("--seeds", type=int, default=None, metavar="N", help="training seeds per loss (default: the protocol's)")
    p.add_argument("--first-seed", type=int, default=None, metavar="S", help="first training seed (default: the protocol's)")
    p.add_argument("--eval-seed", type=int, default=None, metavar="E",
                   help="episodes start from reset(seed=E + e) (default: the protocol's)")
    p.add_argument("--env", default=None, help="benchmark environment (default: the run's; another one is a "
                                               "transfer check)")
    p.add_argument("--dataset", default=None, help="dataset variant (default: the run's; another one is a "
                                                   "transfer check)")
    p.add_argument("--top", type=int, default=None, metavar="K",
                   help="confirm only the first K discovered losses and the first K baselines (default: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress display")
    p.set_defaults(func=run_confirm)


def protocol_spec(base: str, args: argparse.Namespace) -> str:
    """``base`` with the options that override it in place of its own values (``final:seeds=8`` + ``--seeds 20``
    -> ``final:seeds=20``)."""
    given = {}
    for name in ("seeds", "first_seed", "eval_seed"):
        value = getattr(args, name)
        if value is not None:
            given[name] = check_range(f"--{name.replace('_', '-')}", value, lo=1 if name == "seeds" else 0,
                                      integer=True)
    parts = [part for part in base.strip().split(":") if part.partition("=")[0].strip() not in given]
    return ":".join([*parts, *(f"{name}={value}" for name, value in given.items())])


def run_confirm(args: argparse.Namespace) -> int:
    if args.top is not None:
        check_range("--top", args.top, lo=1, integer=True, why="at least one loss of each kind")
    run_dir = Path(args.run_dir)
    stored, contenders = read_run(run_dir)
    spec = protocol_spec(args.protocol or stored.confirm_protocol, args)
    config = dataclasses.replace(stored, env=args.env or stored.env, dataset=args.dataset or stored.dataset,
                                 confirm_protocol=spec, confirm=max(stored.confirm, 1))  # checks held-out seeds
    protocol = config.confirmation_protocol()
    contenders = top_contenders(contenders, args.top)
    fitness = BenchmarkFitness(env=config.env, dataset=config.dataset, protocol=protocol,
                               dataset_overrides=config.dataset_overrides, progress=not args.no_progress,
                               train_progress=not args.no_progress)
    fitness.validate()
    print(f"symloss confirm: {len(contenders)} losses on {config.env}/{config.dataset}, protocol {spec} (seeds "
          f"{protocol.first_seed}..{protocol.first_seed + protocol.seeds - 1}, start states from "
          f"reset(seed={protocol.eval_seed}), {len(protocol.start_state_seeds)} in all, {protocol.start_states})")
    confirmation = confirm(contenders, fitness, protocol_text=spec)
    tag = confirm_tag(config.env, config.dataset, protocol)
    title = "Held-out confirmation" + ("" if (config.env, config.dataset) == (stored.env, stored.dataset) else
                                       f" (transfer check: searched on {stored.env}/{stored.dataset})")
    report = write_report(run_dir, confirmation, config=config, tag=tag, title=title,
                          reference=fitness.reference_score())
    print(markdown_table(confirmation))
    print(confirmation.verdict.line())
    print(f"report: {report}")
    return 0
