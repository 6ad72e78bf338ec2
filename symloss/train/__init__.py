"""Batched training: P candidate objectives x S seeds trained at once as stacked policies, then scored.

>>> from symloss import bench, objectives, train                              # doctest: +SKIP
>>> ds = bench.build_dataset("hopper", "noisy")
>>> spec = bench.spec_for_dataset(ds); ref = bench.fit_reference(spec, ds)
>>> trainer = train.PopulationTrainer(train.TrainConfig(fitness="offline"))
>>> data = trainer.prepare(ds, spec, ref)            # reference log-probs: computed once, hold it
>>> result = trainer.fit([objectives.dpo(), objectives.orpo()], data, seeds=3)
>>> result.to_frame()                                # name, fitness (mean over seeds), fitness_std, status...

On CUDA (``TrainConfig(device="cuda")``) the same step is recorded once as a CUDA graph and replayed
(``cuda_graph=True``, the default); on CPU, members train in cache-sized chunks, with as many threads as
other processes leave CPUs free (``TrainConfig.threads`` fixes it) and denormals flushed to zero.
``fit(..., progress=True)`` shows a progress bar. Speeds: benchmarks/RESULTS.md, population training speed.
"""

from symloss.train._config import BUDGETS, FITNESS_NAMES, Budget, TrainConfig
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

__all__ = [
    "BUDGETS", "FITNESS", "FITNESS_NAMES", "FRAME_COLUMNS", "AdamState", "Budget", "FitnessContext", "FitnessFn",
    "PopulationResult", "PopulationTrainer", "PreferenceData", "TrainConfig", "adam_init", "adam_step_",
    "clip_grads_", "expert_loglik", "holdout_accuracy", "member_bytes", "member_grad_norm", "offline_fitness",
    "prepare_data", "random_pair_tensors", "reference_logps", "return_fitness", "train_single",
]
