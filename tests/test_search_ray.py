"""The Ray executor against a local Ray (2 CPUs) started by the test: same hall of fame, retried tasks."""

import os

import pytest

from symloss.search import LossSearch, MirrorTargetFitness
from symloss.search._ray import split_evenly

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    import sys

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield
    ray.shutdown()


def test_split_evenly():
    assert split_evenly(list(range(7)), 3) == [[0, 1, 2], [3, 4], [5, 6]]
    assert split_evenly([1], 4) == [[1]]


class DiesOnce:
    """A fitness whose first task kills its worker process (a crashed node); the retry succeeds."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.inner = MirrorTargetFitness("softplus(u)")

    def __call__(self, losses):
        if not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(1)
        return self.inner(losses)


def test_ray_gives_the_local_hall_of_fame_and_retries_killed_tasks(local_ray, tmp_path):
    kwargs = {"population": 10, "generations": 2, "seed": 4, "progress": False}
    local = LossSearch(**kwargs, fitness=MirrorTargetFitness("softplus(u)")).fit()
    remote = LossSearch(**kwargs, executor="ray", fitness=DiesOnce(str(tmp_path / "died"))).fit()
    assert (tmp_path / "died").exists()  # a worker really died ...
    assert remote.hall_of_fame_.equals(local.hall_of_fame_)  # ... and its task was retried
