"""Loss search: genetic programming (DEAP) over the MPO slots, with a Pareto hall of fame and resumable runs.

>>> import symloss as sl
>>> from symloss.search import MirrorTargetFitness
>>> search = sl.LossSearch(population=16, generations=2, seed_zoo=False, progress=False,
...                        fitness=MirrorTargetFitness("softplus(u)"))   # doctest: +SKIP
>>> search.fit().hall_of_fame_.head()                                    # doctest: +SKIP
"""

from symloss.search._checkpoint import CheckpointError
from symloss.search._config import RESUMABLE_CHANGES, SearchConfig
from symloss.search._evolve import (
    WORST,
    ZOO_SEEDS,
    Candidate,
    FitnessResult,
    SearchState,
    ask,
    build_operators,
    tell,
)
from symloss.search._fitness import FitnessFn, MirrorTargetFitness, mirror_grid, normalised_mirror, safe_call
from symloss.search._individual import Individual, individual_from_strings, tree_from_string
from symloss.search._rundir import RunDirError, RunDirLocked
from symloss.search._search import LossSearch

__all__ = [
    "RESUMABLE_CHANGES", "WORST", "ZOO_SEEDS", "Candidate", "CheckpointError", "FitnessFn", "FitnessResult",
    "Individual", "LossSearch", "MirrorTargetFitness", "RunDirError", "RunDirLocked", "SearchConfig", "SearchState", "ask", "build_operators",
    "individual_from_strings", "mirror_grid", "normalised_mirror", "safe_call", "tell", "tree_from_string",
]
