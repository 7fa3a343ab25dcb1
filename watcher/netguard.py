"""Connect only to the address that was checked: the address policy at connect time.

fetch.py checks a feed's host before each request, but a name can resolve differently a
moment later (DNS rebinding: a short TTL, first a public address, then 127.0.0.1). So a
direct connection resolves the name again where it is made, refuses the host when any of
its addresses is not public (unless the request allows private networks), and then
connects to one of exactly those addresses. TLS still gets the host name, so SNI and
certificate verification are for the name, not the IP.

The policy (``resolve``, ``refusal``, ``address_refusal``) is used by the Fetcher's aiohttp
connector (fetch._PinningResolver). ``GuardedBackend`` and ``GuardedTransport`` apply the
same policy to httpcore and httpx clients: a network backend whose ``connect_tcp`` does
the above.

Connections made for a feed that allows private networks live apart (a pool, or a lane,
of their own), so a feed that does not allow them can never reuse one.

A proxy resolves the names it is asked for itself: behind a proxy only fetch.py's check
before the request applies, and pinning is the proxy's business (see SECURITY.md).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence

import httpcore
import httpx

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


class GuardError(httpcore.ConnectError):
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


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves with `resolver`, applies the policy, connects to a checked address."""

    def __init__(
        self,
        resolver: Resolver,
        *,
        allow_private: bool,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._resolver = resolver
        self._allow_private = allow_private
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await resolve(self._resolver, host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"timed out resolving {host}") from None
        if not self._allow_private:
            refused = refusal(host, addresses)
            if refused is not None:
                raise AddressRefused(refused)
        failure: Exception | None = None
        for address in addresses:  # the checked addresses, and only those
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # resolve() never returns no address
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused("refused: Unix sockets are never fetched from")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (request and response mapping, errors), on a guarded pool."""

    def __init__(
        self, backend: GuardedBackend, limits: httpx.Limits, verify: ssl.SSLContext | bool
    ) -> None:
        super().__init__(limits=limits, http1=True, http2=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=backend,
        )


class GuardedTransport(httpx.AsyncBaseTransport):
    """Direct connections only, each to an address checked at connect time.

    A request whose extensions carry ``ALLOW_PRIVATE: True`` goes through a pool that
    allows private addresses; every other request through one that refuses them.
    """

    def __init__(
        self,
        resolver: Resolver = system_resolver,
        *,
        limits: httpx.Limits | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self._resolver = resolver
        self._limits = limits or httpx.Limits()
        self._verify = verify
        self._pools: dict[bool, _PinnedTransport] = {}

    def _pool(self, allow_private: bool) -> _PinnedTransport:
        pool = self._pools.get(allow_private)
        if pool is None:
            backend = GuardedBackend(self._resolver, allow_private=allow_private)
            pool = self._pools[allow_private] = _PinnedTransport(
                backend, self._limits, self._verify
            )
        return pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        allow_private = request.extensions.get(ALLOW_PRIVATE) is True
        return await self._pool(allow_private).handle_async_request(request)

    async def aclose(self) -> None:
        pools = list(self._pools.values())
        self._pools.clear()
        for pool in pools:
            await pool.aclose()
