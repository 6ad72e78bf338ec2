"""The shared argument checks: accepted values pass through, every refusal states the accepted range."""

import math

import pytest
import torch

from symloss.validation import (
    ConfigError,
    check_bool,
    check_choice,
    check_device,
    check_finite,
    check_range,
    check_tuple,
    did_you_mean,
)


def test_range_accepts_inside_and_states_interval_when_refusing():
    assert check_range("elite", 3, lo=0, hi=15, integer=True) == 3
    with pytest.raises(ConfigError, match=r"elite=16: must be an integer in \[0, 15\]; lower it"):
        check_range("elite", 16, lo=0, hi=15, integer=True, fix="lower it")
    with pytest.raises(ConfigError, match=r"lr=inf: must be a finite number > 0"):
        check_range("lr", math.inf, lo=0, lo_open=True)
    with pytest.raises(ConfigError, match=r"steps=0: must be an integer >= 1"):
        check_range("steps", 0, lo=1, integer=True)
    with pytest.raises(ConfigError, match=r"p=nan"):
        check_range("p", math.nan, lo=0, hi=1)
    with pytest.raises(ConfigError, match="must be an integer"):
        check_range("seeds", 2.5, lo=1, integer=True)
    with pytest.raises(ConfigError):
        check_range("flag", True, lo=0)


def test_open_upper_bound_and_why():
    with pytest.raises(ConfigError, match=r"x=1: must be a finite number < 1 \(a probability\)"):
        check_range("x", 1, hi=1, hi_open=True, why="a probability")
    assert check_range("x", 0.99, hi=1, hi_open=True) == 0.99


def test_choice_suggests_the_closest_name():
    assert check_choice("env", "hopper", ["hopper", "tla"]) == "hopper"
    with pytest.raises(ConfigError, match=r"env='hoper': must be one of \['hopper', 'tla'\]; did you mean 'hopper'\?"):
        check_choice("env", "hoper", ["hopper", "tla"])
    assert did_you_mean("zzzz", ["hopper"]) == ""
    assert did_you_mean("TRL", ["latex", "trl"]) == "; did you mean 'trl'?"  # case is ignored


def test_bool_and_finite_refuse_lookalikes():
    assert check_bool("reference_free", False) is False
    with pytest.raises(ConfigError, match="reference_free='no': must be true or false"):
        check_bool("reference_free", "no")
    assert check_finite("beta", 2) == 2.0
    for bad in (math.inf, -math.inf, math.nan, "1", None, True):
        with pytest.raises(ConfigError, match="must be a finite number"):
            check_finite("beta", bad)


def test_tuple_states_the_count_and_an_example():
    assert check_tuple("betas", [0.9, 0.999], length=2) == (0.9, 0.999)
    with pytest.raises(ConfigError, match=r"constant_range=\(1.0,\): must be 2 finite numbers \(low, high\); "
                                          r"e.g. \(-1, 1\)"):
        check_tuple("constant_range", (1.0,), length=2, what="low, high", example="(-1, 1)")
    with pytest.raises(ConfigError, match=r"init_depth=\(1, 2.5\): must be 2 integers"):
        check_tuple("init_depth", (1, 2.5), length=2, integer=True)
    with pytest.raises(ConfigError, match="must be 2 finite numbers"):
        check_tuple("betas", (0.9, math.nan), length=2)


def test_device_spelling_and_availability():
    assert check_device("device", "cpu") == "cpu"
    for bad in ("gpu", "cuda:", "cuda:-1", "CUDA"):
        with pytest.raises(ConfigError, match=f"device={bad!r}: must be 'cpu', 'cuda' or 'cuda:<index>'"):
            check_device("device", bad)
    assert check_device("device", "cuda:3", here=False) == "cuda:3"  # e.g. on Ray workers: spelling only
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="device='cuda': CUDA is not available here; use device='cpu'"):
            check_device("device", "cuda")
    else:
        count = torch.cuda.device_count()
        assert check_device("device", "cuda:0") == "cuda:0"
        with pytest.raises(ConfigError, match=rf"index in \[0, {count - 1}\]"):
            check_device("device", f"cuda:{count}")
