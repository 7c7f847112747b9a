"""Pure rules of the connection guard: per-client and total counting, the cap fitted to the
open-file limit, the once-per-second gate for accept() errors, the refusal's bytes."""
import json

from photoslot.server.connection_guard import FD_RESERVE, REFUSALS, ConnectionCounts, OncePer, fd_ceiling


def test_per_client_cap_refuses_only_that_client():
    counts = ConnectionCounts(total=100, per_client=2)
    assert counts.open("a") is None and counts.open("a") is None
    assert counts.open("a") == "client"
    assert counts.open("b") is None
    assert counts.total == 3 and counts.by_client == {"a": 2, "b": 1}


def test_total_cap_refuses_everyone_and_a_refusal_is_not_counted():
    counts = ConnectionCounts(total=3, per_client=10)
    for key in ("a", "b", "c"):
        assert counts.open(key) is None
    assert counts.open("d") == "total"
    assert counts.open("a") == "total"
    assert counts.total == 3 and counts.by_client == {"a": 1, "b": 1, "c": 1}


def test_closing_frees_the_slot_and_forgets_idle_clients():
    counts = ConnectionCounts(total=2, per_client=1)
    counts.open("a")
    counts.open("b")
    counts.close("a")
    assert counts.by_client == {"b": 1} and counts.total == 1
    assert counts.open("a") is None


def test_a_relay_counts_toward_the_total_only():
    counts = ConnectionCounts(total=5, per_client=1)
    for _ in range(4):
        assert counts.open("proxy", relay=True) is None
    assert counts.by_client == {} and counts.total == 4
    assert counts.open("a") is None
    assert counts.open("proxy", relay=True) == "total"
    counts.close("proxy", relay=True)
    assert counts.total == 4


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
