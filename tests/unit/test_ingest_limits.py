"""Pure rules of the ingest door: the guess throttle's delays, its bounded memory and report, the
known clients, the early-photo buffer budget, the client key, the test-shot limits."""
import pytest

from photoslot.ingest_limits import (MAX_ADDRESSES, BufferBudget, KnownClients, PasswordThrottle, RehearsalLimits,
                                     RehearsalRefused, backoff_seconds,
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


def test_wrong_answers_are_free_then_delayed_doubling_up_to_the_cap():
    t = throttle()  # 3 free, then 1 s doubling to 8 s
    delays = [t.failed("10.0.0.9", now=100.0 + i) for i in range(8)]
    assert delays == [0, 0, 0, 1, 2, 4, 8, 8]


def test_another_address_is_never_delayed_by_a_guesser():
    t = throttle()
    for i in range(10):
        t.failed("10.0.0.9", now=100.0 + i)
    assert t.failed("10.0.0.7", now=110.0) == 0
    assert len(t) == 2 and t.failures("10.0.0.9", now=110.0) == 10


def test_the_right_password_clears_the_address_and_failures_are_forgotten_after_the_window():
    t = throttle()
    for i in range(5):
        t.failed("a", now=100.0 + i)
        t.failed("b", now=100.0 + i)
    t.succeeded("a")
    assert t.failed("a", now=104.5) == 0  # a booth PC's second profile starts afresh
    assert t.failed("b", now=104.5) > 0
    assert t.failed("b", now=104.5 + 101) == 0  # the window passed since the newest failure
    assert t.proven("a") and not t.proven("b")


def test_the_table_of_addresses_is_capped_and_drops_the_stalest_first():
    t = throttle(max_addresses=3)
    for i, address in enumerate(["a", "b", "c", "d"]):
        for _ in range(4):
            t.failed(address, now=100.0 + i)
    assert len(t) == 3
    assert t.failures("a", now=103.5) == 0  # dropped: oldest newest-failure
    assert t.failures("d", now=103.5) == 4


def test_a_flood_of_rotating_addresses_cannot_grow_memory():
    t = throttle()
    for i in range(MAX_ADDRESSES * 3):
        t.failed(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", now=float(i))
    assert len(t) == MAX_ADDRESSES
    report = t.report()
    assert len(report.top) == 10
    assert report.other_addresses == MAX_ADDRESSES - 10
    assert sum(c["wrong"] for _a, c in report.top) + report.other["wrong"] == MAX_ADDRESSES * 3


def test_the_report_names_who_guessed_and_counts_delayed_answers_then_starts_afresh():
    t = throttle()
    for i in range(5):
        t.failed("10.0.0.9", now=100.0)
    t.note("10.0.0.8", "busy")
    report = t.report()
    assert report.top == [("10.0.0.9", {"wrong": 5, "delayed": 2, "busy": 0}),
                          ("10.0.0.8", {"wrong": 0, "delayed": 0, "busy": 1})]
    assert report.other_addresses == 0 and report.other == {"wrong": 0, "delayed": 0, "busy": 0}
    assert t.report() is None


def test_a_success_keeps_the_guesses_for_the_report():
    t = throttle()
    t.failed("10.0.0.9", now=100.0)
    t.succeeded("10.0.0.9")
    assert t.report().top == [("10.0.0.9", {"wrong": 1, "delayed": 0, "busy": 0})]


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


def test_only_the_right_password_proves_an_address_and_the_known_are_bounded():
    known = KnownClients(limit=2)
    t = throttle(known=known)
    t.failed("a", now=100.0)
    assert not t.proven("a")
    for address in ("a", "b", "c"):
        t.succeeded(address)
    assert [t.proven(a) for a in ("a", "b", "c")] == [False, True, True]  # the oldest known was dropped
    known.add("b")  # seen again: the newest now
    known.add("d")
    assert "b" in known and "c" not in known and len(known) == 2


def test_busy_refusals_of_an_address_count_toward_its_delays_and_are_reported_as_busy():
    t = throttle(free=2)
    assert t.failed("10.0.0.9", now=100.0, kind="busy") == 0
    assert t.failed("10.0.0.9", now=100.0, kind="busy") == 0
    assert t.failed("10.0.0.9", now=100.5) == 1  # the third failure: past the free two
    assert t.report().top == [("10.0.0.9", {"wrong": 1, "delayed": 1, "busy": 2})]


def test_test_shots_one_per_slot_at_a_time_and_a_bucket_per_admin():
    limits = RehearsalLimits(per_minute=3)
    limits.begin("slot-001", "serg", now=0.0)
    with pytest.raises(RehearsalRefused) as exc:
        limits.begin("slot-001", "igor", now=0.0)  # the slot's shot is still running
    assert exc.value.reason == "test_shot_running"
    limits.end("slot-001")
    limits.begin("slot-001", "serg", now=0.0)
    limits.end("slot-001")
    limits.begin("slot-002", "serg", now=0.0)
    limits.end("slot-002")
    with pytest.raises(RehearsalRefused) as exc:  # serg's three are spent …
        limits.begin("slot-003", "serg", now=1.0)
    assert exc.value.reason == "too_many_test_shots" and exc.value.retry_after == 19
    assert "slot-003" not in limits.running  # nothing taken by a refusal
    limits.begin("slot-003", "igor", now=1.0)  # … igor's are his own
    limits.end("slot-003")
    limits.begin("slot-003", "serg", now=21.0)  # one came back after 20 s
