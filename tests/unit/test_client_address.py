"""The client address of a request: X-Forwarded-For believed only from a trusted proxy."""
from __future__ import annotations

import pytest

from photoslot.client_address import resolve, trusted_networks
from photoslot.config import Config

LOCAL_PROXY = trusted_networks(Config(raw={"server": {"trusted_proxies": ["127.0.0.1", "::1"]}}))
TWO_HOPS = trusted_networks(Config(raw={"server": {"trusted_proxies": ["127.0.0.1", "10.0.0.0/8"]}}))


def test_without_trusted_proxies_the_header_is_ignored():
    assert resolve("192.168.1.50", ["203.0.113.9"], ()) == "192.168.1.50"
    assert resolve("127.0.0.1", ["203.0.113.9"], ()) == "127.0.0.1"


def test_an_untrusted_peer_cannot_claim_another_address():
    assert resolve("192.168.1.50", ["203.0.113.9"], LOCAL_PROXY) == "192.168.1.50"


def test_behind_a_trusted_proxy_the_address_it_appended_is_the_client():
    assert resolve("127.0.0.1", ["203.0.113.9"], LOCAL_PROXY) == "203.0.113.9"
    assert resolve("::1", ["2001:db8::5"], LOCAL_PROXY) == "2001:db8::5"


def test_what_the_client_wrote_further_left_is_never_believed():
    # the client sent "X-Forwarded-For: 1.2.3.4"; nginx appended the real peer
    assert resolve("127.0.0.1", ["1.2.3.4, 198.51.100.20"], LOCAL_PROXY) == "198.51.100.20"
    assert resolve("127.0.0.1", ["1.2.3.4", "198.51.100.20"], LOCAL_PROXY) == "198.51.100.20"


def test_every_trusted_hop_is_skipped_from_the_right():
    assert resolve("127.0.0.1", ["1.2.3.4, 198.51.100.20, 10.1.2.3"], TWO_HOPS) == "198.51.100.20"


def test_ports_brackets_and_mapped_addresses_are_understood():
    assert resolve("127.0.0.1", ["198.51.100.20:51234"], LOCAL_PROXY) == "198.51.100.20"
    assert resolve("127.0.0.1", ["[2001:db8::9]:443"], LOCAL_PROXY) == "2001:db8::9"
    assert resolve("::ffff:127.0.0.1", ["198.51.100.20"], LOCAL_PROXY) == "198.51.100.20"


@pytest.mark.parametrize("header", ["garbage", "unknown", "", " , ", "1.2.3.4, not-an-ip"])
def test_garbage_in_the_chain_stops_at_the_last_address_we_can_vouch_for(header):
    got = resolve("127.0.0.1", [header], LOCAL_PROXY)
    assert got in ("127.0.0.1",)


def test_no_peer_is_unknown():
    assert resolve(None, [], LOCAL_PROXY) == "unknown"


def test_a_bad_trusted_proxy_entry_is_named():
    with pytest.raises(ValueError, match="nginx"):
        trusted_networks(Config(raw={"server": {"trusted_proxies": ["nginx"]}}))
