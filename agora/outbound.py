"""Requests Agora makes to URLs its users give (webhook endpoints, Prometheus metrics): never to the
marketplace's own network unless the operator allows it.

A seller could otherwise point the server at loopback, link-local (cloud metadata at 169.254.169.254) or
private addresses and read what answers there. So an address must be global, checked twice: when the URL is
set (a clear 422 for an obvious mistake) and when it is fetched, because a name may resolve differently by
then. The fetch connects to the very address that was checked (the name goes in `Host` and TLS SNI), so a
second lookup cannot swap it. `AGORA_ALLOW_PRIVATE_URLS=1` lifts the rule for installs whose sellers live on
the same private network (and for tests that serve on 127.0.0.1). Redirects are not followed.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from agora.config import get_settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class RefusedUrl(Exception):
    """The URL names, or resolves to, an address Agora does not fetch from."""


def _refused(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


def _split(url: str) -> tuple[Any, str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RefusedUrl("must be an http:// or https:// URL with a host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise RefusedUrl("has an invalid port") from None
    return parts, parts.hostname, port


def _addresses(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise RefusedUrl(f"host {host} cannot be resolved") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def _private_allowed() -> bool:
    return get_settings().allow_private_urls


def check_url(url: str) -> str | None:
    """Why Agora would not fetch `url`, or None: for checking a URL when it is set. A name that does not
    resolve now is let through (it is checked again at every fetch)."""
    try:
        _, host, port = _split(url)
        if _private_allowed():
            return None
        addresses = _addresses(host, port)
    except RefusedUrl as refused:
        return None if "cannot be resolved" in str(refused) else str(refused)
    if any(_refused(a) for a in addresses):
        return (
            f"must not point at a loopback, link-local or private address ({host}); "
            "the operator may allow them with AGORA_ALLOW_PRIVATE_URLS=1"
        )
    return None


def request(method: str, url: str, **options: Any) -> httpx.Response:
    """`httpx.request` to a checked address. Raises `RefusedUrl` (the message names the host, never what a
    server answered) or `httpx.HTTPError`."""
    parts, host, port = _split(url)
    if _private_allowed():
        return httpx.request(method, url, follow_redirects=False, **options)
    addresses = _addresses(host, port)
    if not addresses or any(_refused(a) for a in addresses):
        raise RefusedUrl(f"{host} resolves to an address Agora does not fetch from (loopback, link-local or private)")
    address = addresses[0]
    literal = f"[{address}]" if address.version == 6 else str(address)
    netloc = f"{literal}:{parts.port}" if parts.port else literal
    pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    headers = {**options.pop("headers", {}), "Host": parts.netloc.rpartition("@")[2]}
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}  # TLS verifies the name, not the IP
    with httpx.Client(follow_redirects=False) as client:
        return client.request(method, pinned, headers=headers, extensions=extensions, **options)
