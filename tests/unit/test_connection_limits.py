"""Pure rules of the connection guard: per-client and total counting, who makes room at the
total, the cap fitted to the
open-file limit, the once-per-second gate for accept() errors, the refusal's bytes."""
import json

from photoslot.server.connection_guard import FD_RESERVE, REFUSALS, ConnectionTable, OncePer, fd_ceiling


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
    table.head_done(1)  # 1 is busy with a request: never evicted
    assert table.open(4, "d") == (None, 2)
    assert table.open(5, "d") == (None, 3)
    assert table.total == 3 and table.by_client == {"a": 1, "d": 2}


def test_at_the_total_with_every_connection_busy_the_newcomer_is_refused():
    table = ConnectionTable(total=2, per_client=10)
    for conn in (1, 2):
        table.open(conn, "a")
        table.head_done(conn)
    assert table.open(3, "b") == ("total", None)
    assert table.total == 2 and table.by_client == {"a": 2}


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
        table.head_done(conn)
    assert table.by_client == {} and table.total == 4
    assert table.open(10, "a") == (None, None)
    table.head_done(10)
    assert table.open(11, "proxy", relay=True) == ("total", None)
    table.close(0)
    assert table.total == 4


def test_the_total_fits_the_open_file_limit_with_a_reserve():
    assert fd_ceiling(1000, None) == 1000
    assert fd_ceiling(1000, 1024) == 1024 - FD_RESERVE
    assert fd_ceiling(1000, 65536) == 1000
    assert fd_ceiling(1000, 100) == 1  # absurdly low limit: still serve one


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
    assert headers["Retry-After"] == "1"
    answer = json.loads(body)
    assert answer["status"] == "error" and answer["failure_reason"] == "too_many_connections"
    assert answer["retry_after"] == 1 and answer["details"]
