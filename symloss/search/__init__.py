"""Loss search: genetic programming (DEAP) over the MPO slots, with a Pareto hall of fame and resumable runs.

The main flow: :class:`LossSearch` reads a :class:`SearchConfig` (the search's knobs, and ``train``: the
training protocol, a ``symloss.train.TrainConfig`` preset by name) and loops over generations: ``ask``
builds offspring trees (``symloss.expr``), checks them and turns each into a ``MirrorLoss``
(``symloss.objectives``); the fitness scores the new ones in one batched call (by default
``symloss.train.BenchmarkFitness``: trained and scored on the benchmark by the protocol, locally or as Ray
tasks); ``tell`` records the results and selects survivors; a checkpoint is written after each generation.

>>> import symloss as sl
>>> from symloss.search import MirrorTargetFitness
>>> search = sl.LossSearch(population=16, generations=2, seed_zoo=False, progress=False,
...                        fitness=MirrorTargetFitness("softplus(u)"))   # doctest: +SKIP
>>> search.fit().hall_of_fame_.head()                                    # doctest: +SKIP
"""

from symloss.expr import tree_from_string
from symloss.search._checkpoint import CheckpointError
from symloss.search._config import RESUMABLE_CHANGES, SearchConfig, split_fields
from symloss.search._confirm import (
    CONTENDERS_FILE,
    Confirmation,
    Contender,
    ContenderResult,
    Verdict,
    confirm,
    paired_verdict,
    read_contenders,
    read_run,
    top_contenders,
    write_contenders,
)
from symloss.search._evolve import ZOO_SEEDS, Candidate, SearchState, ask, build_operators, tell
from symloss.search._fitness import (
    WORST,
    FitnessFn,
    FitnessResult,
    MirrorTargetFitness,
    as_results,
    benchmark_fitness,
    mirror_grid,
    normalised_mirror,
    safe_call,
)
from symloss.search._individual import Individual, individual_from_strings
from symloss.search._report import confirm_tag, markdown_table, write_report
from symloss.search._rundir import RunDirError, RunDirLocked
from symloss.search._search import LossSearch

__all__ = [
    "CONTENDERS_FILE", "Confirmation", "Contender", "ContenderResult", "Verdict", "confirm", "confirm_tag",
    "markdown_table", "paired_verdict", "read_contenders", "read_run", "top_contenders", "write_contenders",
    "write_report",
    "RESUMABLE_CHANGES", "WORST", "ZOO_SEEDS", "Candidate", "CheckpointError", "FitnessFn", "FitnessResult",
    "Individual", "LossSearch", "MirrorTargetFitness", "RunDirError", "RunDirLocked", "SearchConfig",
    "SearchState", "as_results", "ask", "benchmark_fitness", "build_operators", "individual_from_strings",
    "mirror_grid", "normalised_mirror", "safe_call", "split_fields", "tell", "tree_from_string",
]
