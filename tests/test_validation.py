"""The shared argument checks: accepted values pass through, every refusal states the accepted range."""

import math

import pytest

from symloss.validation import ConfigError, check_bool, check_choice, check_finite, check_range, did_you_mean


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


def test_bool_and_finite_refuse_lookalikes():
    assert check_bool("reference_free", False) is False
    with pytest.raises(ConfigError, match="reference_free='no': must be true or false"):
        check_bool("reference_free", "no")
    assert check_finite("beta", 2) == 2.0
    for bad in (math.inf, -math.inf, math.nan, "1", None, True):
        with pytest.raises(ConfigError, match="must be a finite number"):
            check_finite("beta", bad)
