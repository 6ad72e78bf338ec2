"""``symloss data build ENV VARIANT``: argparse wiring for the lead's ``symloss/cli.py``.

Usage from the main CLI::

    data = subparsers.add_parser("data", help="preference datasets")
    symloss.bench.cli.register(data.add_subparsers(dest="data_command", required=True))
"""

from __future__ import annotations

import argparse
from typing import Any

from symloss.bench._config import VARIANTS
from symloss.bench._envs import ENV_NAMES

__all__ = ["register", "run_build"]


def register(subparsers: argparse._SubParsersAction, **parser_options: Any) -> argparse.ArgumentParser:
    """Add the ``build`` sub-command to ``subparsers`` (``parser_options`` go to ``add_parser``, e.g.
    ``parents=``); it calls ``run_build``."""
    p = subparsers.add_parser("build", help="build (or load from cache) a MuJoCo preference dataset",
                              **parser_options)
    p.add_argument("env", help=f"environment: {', '.join(ENV_NAMES)}")
    p.add_argument("variant", nargs="?", default="clean", help=f"variant: {', '.join(VARIANTS)}")
    p.add_argument("--n-pairs", type=int, default=None, help="pairs (default: Hopper 5120, TLA 1280)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    p.add_argument("--flip-fraction", type=float, default=None, help="override the noisy flip fraction")
    p.add_argument("--low-quality-fraction", type=float, default=None, help="override the mixed fraction")
    p.add_argument("--cache-dir", default=None, help="cache root (default $SYMLOSS_CACHE or ~/.cache/symloss)")
    p.add_argument("--rebuild", action="store_true", help="ignore an existing cache")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_build)
    return p


def run_build(args: argparse.Namespace) -> int:
    """Build the dataset named by ``args`` and print its location and label statistics."""
    import numpy as np

    from symloss.bench._dataset import build_dataset

    ds = build_dataset(
        args.env, args.variant, n_pairs=args.n_pairs, seed=args.seed, flip_fraction=args.flip_fraction,
        low_quality_fraction=args.low_quality_fraction, cache_dir=args.cache_dir, rebuild=args.rebuild,
        progress=not args.no_progress,
    )
    agree = float(np.mean(ds["return_agrees"]))
    print(f"{args.env}/{args.variant}: {ds.num_rows} pairs, labels agreeing with true return: {agree:.1%}")
    print(f"cache: {ds.cache_files[0]['filename'] if ds.cache_files else '(in memory)'}")
    return 0
