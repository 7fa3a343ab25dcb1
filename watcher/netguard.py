"""Connect only to the address that was checked: the address policy at connect time.

fetch.py checks a feed's host before each request, but a name can resolve differently a
moment later (DNS rebinding: a short TTL, first a public address, then 127.0.0.1). So a
direct connection resolves the name again where it is made, refuses the host when any of
its addresses is not public (unless the request allows private networks), and then
connects to one of exactly those addresses. TLS still gets the host name, so SNI and
certificate verification are for the name, not the IP.

The policy here (``resolve``, ``refusal``, ``address_refusal``) is applied by the Fetcher's
aiohttp connector (fetch._PinningResolver), which connects only to the addresses it returns.

Connections made for a feed that allows private networks live apart (a lane of their own),
so a feed that does not allow them can never reuse one.

A proxy resolves the names it is asked for itself: behind a proxy only fetch.py's check
before the request applies, and pinning is the proxy's business (see SECURITY.md).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# A host name and port in, its addresses out (in the order to try them); raises OSError
# when the name cannot be resolved. Tests hand in their own.
Resolver = Callable[[str, int], Awaitable[Sequence[IPAddress]]]

# Request extension (fetch.py sets it): True lets this request connect to private addresses.
ALLOW_PRIVATE = "watcher.allow_private_networks"
PRIVATE_HINT = "(set fetch.allow_private_networks: true to allow)"

# IPv6 forms that carry an IPv4 address in their low 32 bits.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# Not global, though Python 3.11 still calls them global.
_NOT_GLOBAL_EXTRA = (ipaddress.ip_network("64:ff9b:1::/48"),)


class GuardError(Exception):
    """A connection refused by policy or a name that does not resolve; str() says which."""


class AddressRefused(GuardError):
    pass


class Unresolvable(GuardError):
    pass


def address_refusal(address: IPAddress) -> str | None:
    """Why an address may not be fetched from by default ("a private address"), or None."""
    for form in _forms(address):
        if form.is_multicast:
            return "a multicast address"
        if not form.is_global or any(form in net for net in _NOT_GLOBAL_EXTRA):
            return "a private address"
    return None


def _forms(address: IPAddress) -> list[IPAddress]:
    """The address and every IPv4 address embedded in it."""
    forms: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        forms += [v4 for v4 in (address.ipv4_mapped, address.sixtofour) if v4 is not None]
        forms += list(address.teredo or ())
        if address in _NAT64 or address in _IPV4_COMPATIBLE:
            forms.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return forms


def ip_literal(host: str) -> IPAddress | None:
    """The host as an IP address, or None when it is a name (IPv6 without brackets)."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """The operating system's answer (getaddrinfo), without duplicates, in its order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


async def resolve(resolver: Resolver, host: str, port: int) -> list[IPAddress]:
    """The addresses of `host`: an IP literal is its own answer. Raises Unresolvable."""
    literal = ip_literal(host)
    if literal is not None:
        return [literal]
    try:
        addresses = list(await resolver(host, port))
    except (OSError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise Unresolvable(f"cannot resolve {host}: {reason}") from None
    if not addresses:
        raise Unresolvable(f"cannot resolve {host}: no addresses")
    return addresses


def refusal(host: str, addresses: Iterable[IPAddress]) -> str | None:
    """The message refusing `host` when any of its addresses is not public, or None."""
    for address in addresses:
        kind = address_refusal(address)
        if kind is None:
            continue
        if ip_literal(host) == address:
            return f"refused: {address} is {kind} {PRIVATE_HINT}"
        return f"refused: {host} resolves to {address}, {kind} {PRIVATE_HINT}"
    return None
