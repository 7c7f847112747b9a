"""Who is asking: the client address of a request, believing `X-Forwarded-For` only from our own proxies.

Login throttling (and whatever else keys on the client) must see the real client, but a header is
whatever the client wrote. So the header is read only when the TCP peer is listed in
`server.trusted_proxies` (addresses or networks, e.g. `127.0.0.1`, `10.0.0.0/8`), and then walked
from the right — the end our proxy appended — past every trusted hop; the first address not
trusted is the client. Anything a client put further left is never reached, and a peer that is
not a trusted proxy is the client whatever headers it sends.
"""
from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=32)
def _networks(key: str, entries: tuple[str, ...]) -> tuple[Network, ...]:
    out = []
    for entry in entries:
        try:
            out.append(ipaddress.ip_network(str(entry).strip(), strict=False))
        except ValueError:
            raise ValueError(f"{key}: {entry!r} is not an IP address or network") from None
    return tuple(out)


def networks(cfg, key: str) -> tuple[Network, ...]:
    """A config list of addresses/networks (`server.trusted_proxies`, `metrics.allow`) parsed, cached;
    a bad entry is an error naming the key and the entry."""
    return _networks(key, tuple(str(e) for e in (cfg.get(key) or ())))


def trusted_networks(cfg) -> tuple[Network, ...]:
    return networks(cfg, "server.trusted_proxies")


def _ip(text: str):
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443" as some proxies write IPv6
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.7:51234"
        text = text.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _is_trusted(ip, networks: Iterable[Network]) -> bool:
    return ip is not None and any(ip.version == n.version and ip in n for n in networks)


def listed(address: str | None, networks: Iterable[Network]) -> bool:
    """Whether `address` (text, as `resolve` returns it or as a TCP peer) is in one of `networks`."""
    return _is_trusted(_ip(address) if address else None, networks)


def resolve(peer: str | None, forwarded_for: Iterable[str], networks: Iterable[Network]) -> str:
    """The client's address. `peer` is the TCP peer; `forwarded_for` every X-Forwarded-For header
    value in order (a proxy may send several). Without a trusted peer the headers are ignored."""
    networks = tuple(networks)
    peer_ip = _ip(peer) if peer else None
    if peer_ip is None:
        return peer or "unknown"
    if not _is_trusted(peer_ip, networks):
        return str(peer_ip)
    hops = [h for value in forwarded_for for h in value.split(",") if h.strip()]
    client = peer_ip
    for hop in reversed(hops):
        ip = _ip(hop)
        if ip is None:  # garbage in the chain: stop at the last address we could still vouch for
            break
        client = ip
        if not _is_trusted(ip, networks):
            break
    return str(client)
