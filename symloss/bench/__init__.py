"""The MuJoCo preference benchmark: behaviour policies, preference datasets, token policies, batched evaluation.

In the main flow, bench feeds the trainer (``symloss.train``) its data and its score: behaviour policies
roll out segments, which are paired and labelled into a preference dataset of controlled quality
(``build_dataset``, cached); the SFT reference is behaviour cloning on the chosen segments
(``load_reference``, fitted once and cached); policies act on tokenised actions (``TokenPolicySpec``), and
``evaluate`` runs greedy episodes of many policies at once on simulator threads.

Typical use::

    from symloss import bench
    ds = bench.build_dataset("hopper", "noisy")                 # cached HF dataset of preference pairs
    spec = bench.spec_for_dataset(ds, n_bins=11)
    ref = bench.load_reference(ds, spec, seed=0)                # SFT reference, N = 1 (fitted once, cached)
    mean, std = bench.evaluate(spec, ref, "hopper", episodes=5) # [N] returns

Environments: ``hopper`` (Hopper-v5) and ``tla`` (Ant-v5, no contact forces in the observation,
right back leg disabled). Variants: ``VARIANTS``. Dataset schema: ``symloss.bench._dataset``.
"""

from symloss.bench._behaviour import LEVELS, POLICY_DIR, BehaviourPolicy, load_behaviour, policy_manifest
from symloss.bench._config import DEFAULT_PAIRS, VARIANT_COMPONENTS, VARIANTS, BenchConfig, make_config
from symloss.bench._dataset import build_dataset, dataset_features, dataset_hash, default_cache_dir
from symloss.bench._envs import ENV_NAMES, EnvInfo, check_env_name, env_info, make_env
from symloss.bench._evaluate import episode_returns, evaluate, per_seed_starts
from symloss.bench._reference import (
    REFERENCE_STEPS,
    fit_reference,
    load_reference,
    pair_tensors,
    reference_problem,
    spec_for_dataset,
)
from symloss.bench._score import normalised_score, score_anchors
from symloss.bench._sim import BatchSim
from symloss.bench._token_policy import (
    ACTIONS,
    TokenPolicySpec,
    act,
    detokenize,
    init_params,
    token_logps,
    token_mask,
    tokenize,
)

__all__ = [
    "ACTIONS",
    "normalised_score",
    "score_anchors",
    "check_env_name",
    "BatchSim",
    "BehaviourPolicy",
    "BenchConfig",
    "DEFAULT_PAIRS",
    "ENV_NAMES",
    "EnvInfo",
    "LEVELS",
    "POLICY_DIR",
    "REFERENCE_STEPS",
    "TokenPolicySpec",
    "VARIANTS",
    "VARIANT_COMPONENTS",
    "act",
    "build_dataset",
    "dataset_features",
    "dataset_hash",
    "default_cache_dir",
    "detokenize",
    "env_info",
    "episode_returns",
    "evaluate",
    "fit_reference",
    "init_params",
    "load_behaviour",
    "load_reference",
    "make_config",
    "make_env",
    "pair_tensors",
    "per_seed_starts",
    "policy_manifest",
    "reference_problem",
    "spec_for_dataset",
    "token_logps",
    "token_mask",
    "tokenize",
]
