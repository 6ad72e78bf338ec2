"""Preference datasets: rollouts -> pairs -> a Hugging Face ``datasets.Dataset``, cached on disk.

Schema (one row per pair; L = ``seg_len``, D = obs_dim, A = act_dim; "side" is ``chosen``/``rejected``):

=========================  ======================  ==============================================
column                     type                    meaning
=========================  ======================  ==============================================
``pair_id``                int64                   row index, 0..n_pairs-1
``{side}_obs``             Array2D (L, D) float32  observations o_0..o_{L-1}, zero-padded
``{side}_actions``         Array2D (L, A) float32  continuous actions in [-1, 1], zero-padded
``{side}_length``          int32                   valid steps (the rest is padding), >= min_seg_len
``{side}_return``          float32                 true return: sum of the valid steps' rewards
``{side}_level``           string                  behaviour level that produced the segment
``flipped``                bool                    label flipped by the ``noisy`` component
``low_quality``            bool                    pair drawn from ``low_quality_levels`` (``mixed``)
``return_agrees``          bool                    chosen_return >= rejected_return
=========================  ======================  ==============================================

Actions are stored continuous; a policy tokenises them with its own ``n_bins`` (``tokenize``).

Cache: ``{cache_dir}/datasets/{env}-{variant}-{key}/`` with ``data/`` (``save_to_disk``) and
``meta.json`` (config, key, content hash). ``key`` hashes the config, the schema version and the
behaviour checkpoints, so any change rebuilds. ``cache_dir`` defaults to ``$SYMLOSS_CACHE`` or
``~/.cache/symloss``. A cache whose content hash does not match (or that fails to load) is rebuilt
with a warning, never used. Before ``datasets`` reads anything, the metadata is compared with what this
config writes (data file names, format state, features, the config in the description), so a tampered cache
is rebuilt without its metadata being interpreted.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from symloss.bench._behaviour import LEVELS, load_behaviour, policies_fingerprint, rollout_segments
from symloss.bench._config import BenchConfig, make_config
from symloss.bench._envs import env_info
from symloss.bench._pairs import assign_levels, label_pairs

if TYPE_CHECKING:  # imported where used: `import symloss.bench` loads neither datasets nor pyarrow
    import datasets

__all__ = ["build_dataset", "dataset_hash", "default_cache_dir", "dataset_features", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1


def default_cache_dir() -> Path:
    """``$SYMLOSS_CACHE`` if set, else ``~/.cache/symloss``."""
    return Path(os.environ.get("SYMLOSS_CACHE") or Path.home() / ".cache" / "symloss")


def dataset_features(cfg: BenchConfig) -> datasets.Features:
    """The Arrow schema of ``cfg``'s dataset (see the module docstring)."""
    import datasets
    info = env_info(cfg.env)
    feats: dict[str, Any] = {"pair_id": datasets.Value("int64")}
    for side in ("chosen", "rejected"):
        feats[f"{side}_obs"] = datasets.Array2D((cfg.seg_len, info.obs_dim), "float32")
        feats[f"{side}_actions"] = datasets.Array2D((cfg.seg_len, info.act_dim), "float32")
        feats[f"{side}_length"] = datasets.Value("int32")
        feats[f"{side}_return"] = datasets.Value("float32")
        feats[f"{side}_level"] = datasets.Value("string")
    for flag in ("flipped", "low_quality", "return_agrees"):
        feats[flag] = datasets.Value("bool")
    return datasets.Features(feats)


def dataset_hash(ds: datasets.Dataset) -> str:
    """SHA-256 of every column's values (column names in order); equal data, equal hash."""
    h = hashlib.sha256()
    table = ds.with_format("numpy")[:]
    for col in ds.column_names:
        arr = np.asarray(table[col])
        h.update(col.encode())
        h.update(np.ascontiguousarray(arr).tobytes() if arr.dtype != object else "\0".join(arr).encode())
    return h.hexdigest()


def _cache_key(cfg: BenchConfig) -> str:
    blob = json.dumps({"config": cfg.to_dict(), "schema": SCHEMA_VERSION,
                       "policies": policies_fingerprint(cfg.env)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _rollouts(cfg: BenchConfig, counts: dict[str, int], progress: bool) -> dict[str, dict[str, np.ndarray]]:
    """Segments per level: ``counts[level]`` segments, each level from its own seed."""
    from rich.progress import Progress

    out = {}
    with Progress(disable=not progress, transient=True) as bar:
        for level, n in counts.items():
            task = bar.add_task(f"{cfg.env} {level} rollouts", total=n)
            seed = int(np.random.SeedSequence([cfg.seed, LEVELS.index(level)]).generate_state(1)[0])
            out[level] = rollout_segments(
                load_behaviour(cfg.env, level), n, seg_len=cfg.seg_len, min_len=cfg.min_seg_len,
                action_noise=cfg.action_noise, seed=seed, on_progress=lambda k, t=task: bar.advance(t, k),
            )
    return out


def _assemble(cfg: BenchConfig, progress: bool) -> datasets.Dataset:
    """Build the dataset of ``cfg`` (no cache)."""
    import datasets
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 1000]))
    lv = assign_levels(cfg, rng)
    counts = {name: int((lv[0] == name).sum() + (lv[1] == name).sum()) for name in LEVELS}
    pools = _rollouts(cfg, {k: v for k, v in counts.items() if v}, progress)
    side: list[dict[str, np.ndarray]] = [{}, {}]
    used = dict.fromkeys(pools, 0)
    idx = [np.zeros(cfg.n_pairs, dtype=np.int64) for _ in range(2)]
    for i in range(cfg.n_pairs):  # hand out each level's segments in order
        for s in range(2):
            idx[s][i], used[lv[s][i]] = used[lv[s][i]], used[lv[s][i]] + 1
    for s in range(2):
        for key in ("obs", "actions", "length", "ret"):
            first = next(iter(pools.values()))[key]
            col = np.zeros((cfg.n_pairs, *first.shape[1:]), dtype=first.dtype)
            for name, pool in pools.items():
                m = lv[s] == name
                col[m] = pool[key][idx[s][m]]
            side[s][key] = col
    a_chosen, flipped = label_pairs(cfg, side[0]["ret"], side[1]["ret"], rng)
    cols: dict[str, Any] = {"pair_id": np.arange(cfg.n_pairs, dtype=np.int64)}
    for name, pick_a in (("chosen", a_chosen), ("rejected", ~a_chosen)):
        for key, out in (("obs", "obs"), ("actions", "actions"), ("length", "length"), ("ret", "return")):
            mask = pick_a.reshape(-1, *([1] * (side[0][key].ndim - 1)))
            cols[f"{name}_{out}"] = np.where(mask, side[0][key], side[1][key])
        cols[f"{name}_level"] = np.where(pick_a, lv[0], lv[1]).tolist()
    cols["flipped"], cols["low_quality"] = flipped, lv[2]
    cols["return_agrees"] = cols["chosen_return"] >= cols["rejected_return"]
    return datasets.Dataset.from_dict(cols, features=dataset_features(cfg))


def _quiet_save(ds: datasets.Dataset, path: Path) -> None:
    """``save_to_disk`` without datasets' own progress bar (restoring its previous setting)."""
    import datasets
    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        ds.save_to_disk(str(path))
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


_ARROW_FILE = re.compile(r"data-\d{5}-of-\d{5}\.arrow")
_STATE = {"_format_columns": None, "_format_kwargs": {}, "_format_type": None, "_output_all_columns": False,
          "_split": None}
"""The format state ``save_to_disk`` writes for our datasets (any other value was not written by us)."""


def _metadata_problem(path: Path, key: str, cfg: BenchConfig) -> str:
    """Why the cache's metadata is not what ``cfg`` writes (``""`` if it is), read as plain JSON only."""
    meta = json.loads((path / "meta.json").read_text())
    if not isinstance(meta, dict) or meta.get("key") != key or meta.get("config") != cfg.to_dict():
        return "meta.json does not match the config"
    data = path / "data"
    state = json.loads((data / "state.json").read_text())
    files = state.get("_data_files") if isinstance(state, dict) else None
    if not isinstance(files, list) or not files or any(
            not isinstance(f, dict) or set(f) != {"filename"} or not isinstance(f["filename"], str)
            or not _ARROW_FILE.fullmatch(f["filename"]) for f in files):
        return "state.json lists unexpected data files"
    if any(state.get(k, v) != v for k, v in _STATE.items()):
        return "state.json holds a format this cache never writes"
    info = json.loads((data / "dataset_info.json").read_text())
    if not isinstance(info, dict) or info.get("features") != json.loads(json.dumps(dataset_features(cfg).to_dict())):
        return "dataset_info.json features differ from the schema"
    if not isinstance(info.get("description"), str) or json.loads(info["description"]) != cfg.to_dict():
        return "dataset_info.json description differs from the config"
    return ""


def _load_cached(path: Path, key: str, cfg: BenchConfig) -> datasets.Dataset | None:
    """The cached dataset at ``path`` if its metadata, key and content hash match; warn and return None if
    corrupt."""
    import datasets
    if not (path / "meta.json").exists():
        return None
    try:
        reason = _metadata_problem(path, key, cfg)
        if not reason:
            ds = datasets.load_from_disk(str(path / "data"))
            if dataset_hash(ds) == json.loads((path / "meta.json").read_text()).get("content_hash"):
                return ds
            reason = "content hash mismatch"
    except Exception as err:  # any unreadable file means a corrupt cache
        reason = f"{type(err).__name__}: {str(err)[:200]}"
    warnings.warn(f"symloss: dataset cache {path} is corrupt ({reason}); rebuilding it", stacklevel=3)
    return None


def build_dataset(
    env: str = "hopper",
    variant: str = "clean",
    *,
    cache_dir: str | os.PathLike | None = None,
    rebuild: bool = False,
    progress: bool = True,
    **overrides: Any,
) -> datasets.Dataset:
    """Build (or load from cache) the preference dataset for ``env`` and ``variant``.

    Args:
        env: ``hopper`` or ``tla``.
        variant: a name from ``VARIANTS`` (e.g. ``clean``, ``noisy``, ``bt+noisy+mixed``).
        cache_dir: cache root (default ``$SYMLOSS_CACHE`` or ``~/.cache/symloss``).
        rebuild: ignore an existing cache.
        progress: show a rich progress bar while rolling out.
        **overrides: any ``BenchConfig`` field (``n_pairs``, ``seed``, ``flip_fraction``, ...).

    Returns:
        the dataset (schema in the module docstring); ``ds.info.description`` holds the config JSON.
    """
    import datasets
    cfg = make_config(env, variant, **overrides)
    key = _cache_key(cfg)
    path = Path(cache_dir or default_cache_dir()) / "datasets" / f"{cfg.env}-{cfg.variant}-{key}"
    if not rebuild and (ds := _load_cached(path, key, cfg)) is not None:
        return ds
    ds = _assemble(cfg, progress)
    ds.info.description = json.dumps(cfg.to_dict())
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    _quiet_save(ds, tmp / "data")
    (tmp / "meta.json").write_text(json.dumps({"key": key, "config": cfg.to_dict(),
                                               "content_hash": dataset_hash(ds)}, indent=2))
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)
    return datasets.load_from_disk(str(path / "data"))
