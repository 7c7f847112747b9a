"""Pure rules of the ingest door: the guess throttle's back-off table, its bounded memory and
report, the early-photo buffer budget, the client key."""
import asyncio

import pytest

from photoslot.ingest_limits import (MAX_ADDRESSES, BufferBudget, PasswordThrottle, StrangerGate, backoff_seconds,
                                     client_key)  # backoff_seconds: the admin sign-in's, reused


def throttle(**kw) -> PasswordThrottle:
    options = dict(free=3, first=1.0, cap=8.0, window=100.0)
    options.update(kw)
    return PasswordThrottle(**options)


def test_backoff_table_is_free_then_doubles_up_to_the_cap():
    table = [backoff_seconds(n, free=3, first=1.0, cap=8.0) for n in range(9)]
    assert table == [0, 0, 0, 1, 2, 4, 8, 8, 8]


def test_backoff_of_an_absurd_failure_count_stays_at_the_cap():
    assert backoff_seconds(10**9, free=5, first=1.0, cap=60.0) == 60.0


def test_an_address_waits_only_after_its_free_failures_and_only_after_its_newest_one():
    t = throttle()
    for i in range(3):
        assert t.wait("10.0.0.9", now=100.0 + i) == 0
        t.failed("10.0.0.9", now=100.0 + i)
    assert t.wait("10.0.0.9", now=102.5) == pytest.approx(0.5)  # 1 s after the third failure at 102
    assert t.wait("10.0.0.9", now=103.0) == 0
    t.failed("10.0.0.9", now=103.0)
    assert t.wait("10.0.0.9", now=104.0) == pytest.approx(1.0)  # fourth failure: 2 s


def test_another_address_never_waits_for_a_guesser():
    t = throttle()
    for i in range(10):
        t.failed("10.0.0.9", now=100.0 + i)
    assert t.wait("10.0.0.9", now=110.0) > 0
    assert t.wait("10.0.0.7", now=110.0) == 0
    assert len(t) == 1  # only failing addresses are remembered


def test_the_right_password_clears_the_address_and_failures_are_forgotten_after_the_window():
    t = throttle()
    for i in range(5):
        t.failed("a", now=100.0 + i)
        t.failed("b", now=100.0 + i)
    t.succeeded("a")
    assert t.wait("a", now=104.5) == 0
    assert t.wait("b", now=104.5) > 0
    assert t.wait("b", now=104.0 + 101) == 0  # the window passed since the newest failure
    assert len(t) == 0


def test_the_table_of_addresses_is_capped_and_drops_the_stalest_first():
    t = throttle(max_addresses=3)
    for i, address in enumerate(["a", "b", "c", "d"]):
        for _ in range(4):
            t.failed(address, now=100.0 + i)
    assert len(t) == 3
    assert t.wait("a", now=103.5) == 0  # dropped: oldest newest-failure
    assert t.wait("d", now=103.5) > 0


def test_a_flood_of_rotating_addresses_cannot_grow_memory():
    t = throttle()
    for i in range(MAX_ADDRESSES * 3):
        t.failed(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", now=float(i))
    assert len(t) == MAX_ADDRESSES
    report = t.report()
    assert len(report.top) == 10
    assert report.other_addresses == MAX_ADDRESSES - 10
    assert sum(c["wrong"] for _a, c in report.top) + report.other["wrong"] == MAX_ADDRESSES * 3


def test_the_report_names_who_guessed_and_counts_refusals_then_starts_afresh():
    t = throttle()
    for i in range(5):
        t.failed("10.0.0.9", now=100.0)
    t.wait("10.0.0.9", now=100.1)
    t.wait("10.0.0.9", now=100.2)
    t.note("10.0.0.8", "busy")
    report = t.report()
    assert report.top == [("10.0.0.9", {"wrong": 5, "refused": 2, "busy": 0}),
                          ("10.0.0.8", {"wrong": 0, "refused": 0, "busy": 1})]
    assert report.other_addresses == 0 and report.other == {"wrong": 0, "refused": 0, "busy": 0}
    assert t.report() is None


def test_a_success_keeps_the_guesses_for_the_report():
    t = throttle()
    t.failed("10.0.0.9", now=100.0)
    t.succeeded("10.0.0.9")
    assert t.report().top == [("10.0.0.9", {"wrong": 1, "refused": 0, "busy": 0})]


@pytest.mark.parametrize("address, key", [
    ("192.0.2.7", "192.0.2.7"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
    ("::ffff:192.0.2.7", "192.0.2.7"),
    (None, "unknown"),
    ("not an address", "not an address"),
])
def test_client_key_is_the_address_or_an_ipv6_clients_64(address, key):
    assert client_key(address) == key


def test_buffer_budget_refuses_what_does_not_fit_and_takes_back_what_is_returned():
    budget = BufferBudget(100)
    assert budget.take(60) and budget.take(40)
    assert not budget.take(1)
    assert budget.used == 100
    budget.give_back(40)
    assert budget.take(30) and budget.used == 90
    budget.give_back(1000)
    assert budget.used == 0


def test_only_the_right_password_proves_an_address_and_the_proven_are_bounded():
    t = throttle(max_addresses=2)
    t.failed("a", now=100.0)
    assert not t.proven("a")
    for address in ("a", "b", "c"):
        t.succeeded(address)
    assert [t.proven(a) for a in ("a", "b", "c")] == [False, True, True]  # the oldest proven was dropped


async def test_stranger_gate_lets_a_few_in_queues_a_few_more_and_refuses_the_rest():
    gate = StrangerGate(places=2, line=2)
    assert await gate.enter() and await gate.enter()
    third = asyncio.ensure_future(gate.enter())
    fourth = asyncio.ensure_future(gate.enter())
    await asyncio.sleep(0)
    assert gate.waiting == 2 and not third.done()
    assert await gate.enter() is False  # the line is full: no at once
    gate.leave()  # a place is handed to the first in line
    assert await third is True and gate.inside == 2 and gate.waiting == 1
    fourth.cancel()  # one in line gives up: it leaves no trace
    await asyncio.sleep(0)
    assert gate.waiting == 0
    gate.leave()
    gate.leave()
    assert gate.inside == 0 and await gate.enter()


def test_busy_refusals_of_an_address_count_toward_its_back_off_and_are_reported_as_busy():
    t = throttle(free=2)
    t.failed("10.0.0.9", now=100.0, kind="busy")
    t.failed("10.0.0.9", now=100.0, kind="busy")
    assert t.wait("10.0.0.9", now=100.5) > 0
    assert t.report().top == [("10.0.0.9", {"wrong": 0, "refused": 1, "busy": 2})]
