"""Batched training: P candidate objectives x S seeds trained at once as stacked policies, then scored.

The main flow: :class:`BenchmarkFitness` (what the search calls) builds a benchmark dataset and its SFT
reference (``symloss.bench``), then :class:`PopulationTrainer` trains every loss x seed of a
:class:`TrainConfig` protocol at once (population of stacked policies; one step: minibatch log-probs, each
member's ``MirrorLoss`` from ``symloss.objectives``, clipped Adam) and scores the members with the
protocol's fitness (simulator return or offline accuracy), giving a :class:`PopulationResult`. The
protocols are named presets, ``PROTOCOLS`` ("search", "final"): ``TrainConfig.preset("final", seeds=10)``.

>>> from symloss import bench, objectives, train                              # doctest: +SKIP
>>> ds = bench.build_dataset("hopper", "noisy")
>>> spec = bench.spec_for_dataset(ds); ref = bench.fit_reference(spec, ds)
>>> trainer = train.PopulationTrainer(train.TrainConfig.preset("search", fitness="offline"))
>>> data = trainer.prepare(ds, spec, ref)            # reference log-probs: computed once, hold it
>>> result = trainer.fit([objectives.dpo(), objectives.orpo()], data)   # the protocol's seeds
>>> result.to_frame()                                # name, fitness (mean over seeds), fitness_std, status...

On CUDA (``TrainConfig(device="cuda")``) the same step is recorded once as a CUDA graph and replayed
(``cuda_graph=True``, the default); on CPU, members train in cache-sized chunks, with as many threads as
other processes leave CPUs free (``TrainConfig.threads`` fixes it) and denormals flushed to zero.
``fit(..., progress=True)`` shows a progress bar. Speeds: benchmarks/RESULTS.md, population training speed.
"""

from typing import Any

from symloss.train import _config
from symloss.train._benchmark import BenchmarkFitness, data_u_ranges, data_u_samples
from symloss.train._config import (
    ENV_PROTOCOL,
    FINAL_PROTOCOL,
    FITNESS_NAMES,
    PROTOCOLS,
    SEARCH_PROTOCOL,
    STORED_BEFORE,
    TrainConfig,
)
from symloss.train._data import PreferenceData, prepare_data, random_pair_tensors, reference_logps
from symloss.train._fitness import (
    FITNESS,
    FitnessContext,
    FitnessFn,
    expert_loglik,
    holdout_accuracy,
    offline_fitness,
    return_fitness,
)
from symloss.train._optim import AdamState, adam_init, adam_step_, clip_grads_, member_grad_norm
from symloss.train._population import PopulationTrainer, member_bytes
from symloss.train._result import FRAME_COLUMNS, PopulationResult
from symloss.train._single import train_single
from symloss.train._soup import seed_soup

__all__ = [
    "ENV_PROTOCOL", "FINAL_PROTOCOL", "FITNESS", "FITNESS_NAMES", "FRAME_COLUMNS", "PROTOCOLS", "SEARCH_PROTOCOL", "STORED_BEFORE",
    "AdamState", "BenchmarkFitness", "FitnessContext", "FitnessFn", "PopulationResult", "PopulationTrainer",
    "PreferenceData", "TrainConfig", "adam_init", "adam_step_", "clip_grads_", "data_u_ranges", "data_u_samples",
    "expert_loglik", "holdout_accuracy",
    "member_bytes", "member_grad_norm", "offline_fitness", "prepare_data", "random_pair_tensors",
    "reference_logps", "return_fitness", "seed_soup", "train_single",
]


def __getattr__(name: str) -> Any:  # BUDGETS, Budget: deprecated, removed in symloss 0.3
    return _config.deprecated(name)
