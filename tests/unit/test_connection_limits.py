"""Pure rules of the connection guard: per-client and total counting, who is shed to make room
(strangers' idle, then strangers' bodies, never a known client's work), the share kept for known
clients, penalty holds, the cap fitted to the open-file limit, the once-per-second gate for
accept() errors, the refusal's bytes."""
import json

from photoslot.server.connection_guard import (ACCEPT_BURST, BODY, FD_OWN, FD_RESERVE, HANDLER, MAX_LINGERING, PENALTY,
                                               REFUSALS, WINDOWS_RESERVE, ConnectionTable, OncePer, fd_ceiling)


def test_per_client_cap_refuses_only_that_client():
    table = ConnectionTable(total=100, per_client=2)
    assert table.open(1, "a") == (None, None) and table.open(2, "a") == (None, None)
    assert table.open(3, "a") == ("client", None)
    assert table.open(4, "b") == (None, None)
    assert table.total == 3 and table.by_client == {"a": 2, "b": 1}


def test_at_the_total_the_oldest_connection_without_a_head_makes_room():
    table = ConnectionTable(total=3, per_client=10)
    for conn, key in ((1, "a"), (2, "b"), (3, "c")):
        table.open(conn, key)
    table.set_phase(1, HANDLER)  # 1 is busy with a request: never shed
    assert table.open(4, "d") == (None, 2)
    assert table.open(5, "d") == (None, 3)
    assert table.total == 3 and table.by_client == {"a": 1, "d": 2}


def test_at_the_total_with_every_connection_busy_the_newcomer_is_refused():
    table = ConnectionTable(total=2, per_client=10)
    for conn in (1, 2):
        table.open(conn, "a")
        table.set_phase(conn, HANDLER)
    assert table.open(3, "b") == ("total", None)
    assert table.total == 2 and table.by_client == {"a": 2}


def test_strangers_idle_go_first_then_their_bodies_longest_silent_first():
    table = ConnectionTable(total=4, per_client=10, reserve=0)
    for conn in (1, 2, 3, 4):
        table.open(conn, f"s{conn}")
    for conn in (1, 2, 3):
        table.set_phase(conn, BODY)
    table.active(1)  # 1 sent body bytes lately; 2 and 3 did not
    assert table.open(5, "n1") == (None, 4)     # the idle one first
    table.set_phase(5, HANDLER)
    assert table.open(6, "n2") == (None, 2)     # then the body silent the longest
    table.set_phase(6, HANDLER)
    assert table.open(7, "n3") == (None, 3)
    table.set_phase(7, HANDLER)
    assert table.open(8, "n4") == (None, 1)


def test_a_stranger_never_sheds_a_known_client_a_known_client_sheds_strangers_first():
    table = ConnectionTable(total=3, per_client=10, reserve=0)
    table.open(1, "booth", known=True)  # a booth's kept-alive connection, idle
    table.open(2, "s")
    table.set_phase(2, HANDLER)
    table.open(3, "s")
    table.set_phase(3, BODY)
    assert table.open(4, "t") == (None, 3)  # a stranger sheds the stranger's body …
    table.set_phase(4, HANDLER)
    assert table.open(5, "t") == ("total", None)  # … but never the booth's connection
    assert table.open(6, "booth2", known=True) == (None, 1)  # a known newcomer may take a known idle one
    table.set_phase(6, HANDLER)
    assert table.open(7, "booth3", known=True) == ("total", None)


def test_strangers_leave_a_share_for_known_clients():
    table = ConnectionTable(total=10, per_client=20)  # a tenth kept: strangers may hold 9
    for conn in range(9):
        assert table.open(conn, "s") == (None, None)
        table.set_phase(conn, HANDLER)
    assert table.open(9, "s") == ("total", None) and table.strangers == 9
    assert table.open(10, "booth", known=True) == (None, None)  # the booth still gets in
    assert table.total == 10


def test_a_connection_proven_later_stops_counting_as_a_stranger():
    table = ConnectionTable(total=2, per_client=10, reserve=0)
    table.open(1, "booth")
    table.mark_known(1)
    assert table.strangers == 0 and table.is_known(1)
    table.open(2, "s")
    table.set_phase(2, HANDLER)
    assert table.open(3, "t") == ("total", None)  # the booth's idle connection is not a stranger's


def test_a_penalty_connection_is_shed_first_and_its_place_is_held_after_a_hang_up():
    table = ConnectionTable(total=10, per_client=2, reserve=0)
    table.open(1, "guesser", now=100.0)
    table.open(2, "guesser", now=100.0)
    table.set_phase(1, PENALTY)
    table.close(1, hold_until=104.0, now=100.5)  # the guesser hangs up on its delayed 401
    assert table.by_client == {"guesser": 2}
    assert table.open(3, "guesser", now=101.0) == ("client", None)  # hanging up bought nothing
    assert table.open(3, "guesser", now=104.5) == (None, None)     # the delay is over
    table.close(2, hold_until=99.0, now=104.6)  # a hold already over is none
    assert table.by_client == {"guesser": 1}


def test_closing_frees_the_slot_forgets_idle_clients_and_is_idempotent():
    table = ConnectionTable(total=2, per_client=1)
    table.open(1, "a")
    table.open(2, "b")
    table.close(1)
    table.close(1)  # an evicted connection's own close comes later: nothing happens
    assert table.by_client == {"b": 1} and table.total == 1
    assert table.open(3, "a") == (None, None)


def test_a_relay_counts_toward_the_total_only():
    table = ConnectionTable(total=5, per_client=1)
    for conn in range(4):
        assert table.open(conn, "proxy", relay=True) == (None, None)
        table.set_phase(conn, HANDLER)
    assert table.by_client == {} and table.total == 4
    assert table.open(10, "a") == (None, None)
    table.set_phase(10, HANDLER)
    assert table.open(11, "proxy", relay=True) == ("total", None)
    table.close(0)
    assert table.total == 4


def test_the_total_fits_the_open_file_limit_with_a_reserve():
    assert fd_ceiling(1000, None) == 1000
    assert fd_ceiling(1000, 1024, reserve=FD_RESERVE) == 1024 - FD_RESERVE
    assert fd_ceiling(1000, 65536) == 1000
    assert fd_ceiling(1000, 100) == 1  # absurdly low limit: still serve one
    # Windows: select() watches 512 sockets; one accept burst in flight, not three
    assert fd_ceiling(1000, 512, reserve=WINDOWS_RESERVE) == 512 - WINDOWS_RESERVE == 192
    # the reserve holds three accept bursts, the lingering refusals and our own files
    assert FD_RESERVE == FD_OWN + MAX_LINGERING + 3 * ACCEPT_BURST


def test_once_per_second_lets_one_through_and_counts_the_rest():
    gate = OncePer(1.0)
    passed = [t for t in (0.0, 0.1, 0.5, 0.99, 1.0, 1.2, 2.5) if gate.allow(t)]
    assert passed == [0.0, 1.0, 2.5]
    assert gate.take_held_back() == 4 and gate.take_held_back() == 0


def test_the_refusal_is_a_complete_http_503_with_the_ingest_json():
    raw = REFUSALS["client"]
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 503 Service Unavailable"
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert int(headers["Content-Length"]) == len(body) and headers["Connection"] == "close"
    assert headers["Retry-After"] == "1" and headers["Server"] == "photoslot"
    assert headers["X-Content-Type-Options"] == "nosniff" and "Content-Security-Policy" in headers
    answer = json.loads(body)
    assert answer["status"] == "error" and answer["failure_reason"] == "too_many_connections"
    assert answer["retry_after"] == 1 and answer["details"]
