"""The emulator's latency spread: `latency_max_seconds` above `latency_seconds` draws each request's
latency between the two (a real provider's 5–25 s); otherwise every request takes `latency_seconds`."""
from __future__ import annotations

import pytest

from photoslot.emulator.control import ControlError, EmulatorState


def state() -> EmulatorState:
    return EmulatorState(gemini_api_key=None, turbotext_api_key=None)


def test_latency_is_drawn_between_the_two_bounds():
    s = state()
    s.rng.seed(7)
    s.apply_control({"provider": "gemini", "latency_seconds": 5, "latency_max_seconds": 25})
    draws = [s.latency("gemini") for _ in range(500)]
    assert all(5 <= d <= 25 for d in draws)
    assert min(draws) < 7 and max(draws) > 23  # spread over the range, not one value
    assert s.latency("turbotext") == 0  # per provider


def test_without_a_larger_maximum_every_request_takes_latency_seconds():
    s = state()
    s.apply_control({"latency_seconds": 2.5})
    assert {s.latency("gemini") for _ in range(20)} == {2.5}
    s.apply_control({"latency_max_seconds": 1.0})  # below the minimum: ignored
    assert s.latency("gemini") == 2.5


def test_the_maximum_is_checked_like_latency_seconds():
    with pytest.raises(ControlError):
        state().apply_control({"latency_max_seconds": -1})
    assert state().apply_control({"latency_max_seconds": 4})["gemini"]["latency_max_seconds"] == 4.0
