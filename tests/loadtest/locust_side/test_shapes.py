"""Load shapes and the user mix, driven by a real Locust environment and runner."""

from __future__ import annotations

from argparse import Namespace

import pytest
from locust import User, constant, task
from locust.env import Environment

from loadtest import locust_support, shapes


class DigitLike(User):
    key = "digit"
    wait_time = constant(1)

    @task
    def noop(self) -> None:
        pass


class GrpcLike(DigitLike):
    key = "grpc"


def make_shape(name: str, **options) -> shapes._OptionShape:
    env = Environment(user_classes=[DigitLike], parsed_options=Namespace(**options))
    shape = shapes.shape_class(name)()
    shape.runner = env.create_local_runner()
    return shape


def at(shape, seconds: float):
    shape.start_time -= seconds
    result = shape.tick()
    shape.start_time += seconds
    return result


def test_step_shape_adds_users_per_step_until_max_then_stops():
    shape = make_shape("step", run_time=60, num_users=None, spawn_rate=10, max_users=10,
                       step_users=4, step_seconds=10)
    assert [at(shape, t)[0] for t in (0, 9, 10, 25, 59)] == [4, 4, 8, 10, 10]
    assert at(shape, 61) is None


def test_ramp_shape_reaches_max_at_80_percent():
    shape = make_shape("ramp", run_time=100, num_users=20, spawn_rate=5, max_users=None)
    assert at(shape, 0)[0] == 1 and at(shape, 39)[0] == 10 and at(shape, 85)[0] == 20
    assert at(shape, 100) is None


def test_constant_and_arrival_need_no_shape():
    assert shapes.shape_class("constant") is None and shapes.shape_class("arrival") is None


def test_mix_sets_weights_and_drops_zero_weight_users():
    env = Environment(user_classes=[DigitLike, GrpcLike],
                      parsed_options=Namespace(mix="digit=3,grpc=0"))
    locust_support.apply_mix(env, [DigitLike, GrpcLike])
    assert env.user_classes == [DigitLike] and DigitLike.weight == 3
    env.parsed_options.mix = "digit=1,nope=2"
    with pytest.raises(ValueError, match="nope"):
        locust_support.apply_mix(env, [DigitLike, GrpcLike])
    with pytest.raises(ValueError, match="name=weight"):
        locust_support.parse_mix("digit")
