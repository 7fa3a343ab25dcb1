"""Fetch a feed: a conditional GET over http(s) within limits, or a read of a local file.

The only module that imports httpx. ``Fetcher.fetch`` never raises for network, HTTP or
policy trouble: it returns a FetchResult whose ``error`` says what happened.

Guards (the security notes, §2): http/https only and no user
info; redirects followed here, hop by hop, each hop checked again and never to file:;
every address a host resolves to must be public unless the feed allows private networks;
one deadline for the whole fetch; the body is counted as it streams, after decompression,
which is done here with bounded output because httpx inflates a whole chunk at once.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import stat
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from types import TracebackType
from urllib.parse import unquote, urlsplit

import httpx

from watcher.models import FetchRequest, FetchResult, FetchSettings

ACCEPT = (
    "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.8"
)
ACCEPT_ENCODING = "gzip, deflate"  # only what _Inflater decodes with bounded output

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT_REDIRECTS = frozenset({301, 308})
_PRIVATE_HINT = "(set fetch.allow_private_networks: true to allow)"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# IPv6 forms that carry an IPv4 address in their low 32 bits.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# Not global, though Python 3.11 still calls them global.
_NOT_GLOBAL_EXTRA = (ipaddress.ip_network("64:ff9b:1::/48"),)


class _Failure(Exception):
    """Ends a fetch early; fetch() turns it into a FetchResult."""

    def __init__(
        self, message: str, *, status: int | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.headers: Mapping[str, str] = headers or {}


@dataclass(slots=True)
class _Trip:
    """The hops of one fetch so far."""

    urls: list[str]
    statuses: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.urls[-1]

    def permanent_redirect(self) -> str | None:
        moved = self.statuses and all(s in _PERMANENT_REDIRECTS for s in self.statuses)
        return self.url if moved else None


class Fetcher:
    """Owns one httpx.Client; use as a context manager or call close()."""

    def __init__(
        self,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._client = httpx.Client(
            transport=transport,
            trust_env=False,  # no proxy from the environment can route around the guards
            follow_redirects=False,
            http1=True,
            http2=False,
        )

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def fetch(self, request: FetchRequest) -> FetchResult:
        if _scheme(request.url) == "file":
            return _fetch_file(request)
        trip = _Trip([request.url.strip()])
        try:
            return self._fetch_http(request, trip, self._clock() + request.settings.timeout)
        except _Failure as failure:
            error, status, headers = failure.message, failure.status, failure.headers
        except httpx.TimeoutException:
            error, status, headers = _timed_out(request.settings), None, {}
        except httpx.ConnectError as exc:
            error, status, headers = f"cannot connect to {trip.url}: {exc}", None, {}
        except httpx.HTTPError as exc:
            error, status, headers = f"{trip.url}: {type(exc).__name__}: {exc}", None, {}
        except (httpx.InvalidURL, UnicodeError) as exc:
            error, status, headers = f"invalid request for {trip.url!r}: {exc}", None, {}
        return FetchResult(
            url=request.url, final_url=trip.url, status=status, headers=headers, error=error
        )

    def _fetch_http(self, request: FetchRequest, trip: _Trip, deadline: float) -> FetchResult:
        settings = request.settings
        url = _http_url(trip.url)
        while True:
            _check_address(url, settings)
            response = self._client.send(
                self._client.build_request(
                    "GET",
                    url,
                    headers=_request_headers(request),
                    timeout=httpx.Timeout(self._remaining(deadline, settings)),
                ),
                stream=True,
            )
            try:
                self._remaining(deadline, settings)
                if response.status_code in _REDIRECTS and "location" in response.headers:
                    url = _next_hop(url, response, trip, settings)
                    continue
                return self._result(request, trip, response, deadline)
            finally:
                response.close()

    def _result(
        self, request: FetchRequest, trip: _Trip, response: httpx.Response, deadline: float
    ) -> FetchResult:
        status = response.status_code
        headers = {name.lower(): value for name, value in response.headers.items()}
        if status == 304:
            return FetchResult(
                url=request.url,
                final_url=trip.url,
                status=status,
                headers=headers,
                etag=headers.get("etag", request.etag),
                last_modified=headers.get("last-modified", request.last_modified),
                permanent_redirect=trip.permanent_redirect(),
            )
        if not 200 <= status < 300:
            reason = response.reason_phrase or httpx.codes.get_reason_phrase(status)
            problem = f"HTTP {status} {reason}".strip()
            if status in _REDIRECTS:
                problem += " without a Location header"
            raise _Failure(problem, status=status, headers=headers)
        body = self._read_body(response, headers, request.settings, deadline)
        return FetchResult(
            url=request.url,
            final_url=trip.url,
            status=status,
            headers=headers,
            body=body,
            etag=headers.get("etag"),
            last_modified=headers.get("last-modified"),
            permanent_redirect=trip.permanent_redirect(),
        )

    def _read_body(
        self,
        response: httpx.Response,
        headers: Mapping[str, str],
        settings: FetchSettings,
        deadline: float,
    ) -> bytes:
        limit = settings.max_bytes
        too_large = _Failure(
            f"response larger than {limit} bytes", status=response.status_code, headers=headers
        )
        length = headers.get("content-length", "").strip()
        if length.isdigit() and int(length) > limit:
            raise too_large
        inflater = _Inflater.for_encoding(headers.get("content-encoding", ""))
        if inflater is None:
            encoding = headers.get("content-encoding", "")
            raise _Failure(
                f"unsupported Content-Encoding: {encoding}",
                status=response.status_code,
                headers=headers,
            )
        body = bytearray()
        # The httpx read timeout is what was left when the request went out; between chunks
        # the clock decides, so a server dripping bytes cannot stretch the fetch.
        try:
            for raw in response.iter_raw():
                self._remaining(deadline, settings)
                if not inflater.feed(raw, body, limit):
                    raise too_large
            if not inflater.finish(body, limit):
                raise too_large
        except zlib.error as exc:
            raise _Failure(
                f"cannot decompress the response: {exc}",
                status=response.status_code,
                headers=headers,
            ) from None
        return bytes(body)

    def _remaining(self, deadline: float, settings: FetchSettings) -> float:
        left = deadline - self._clock()
        if left <= 0:
            raise _Failure(_timed_out(settings))
        return left


def _request_headers(request: FetchRequest) -> dict[str, str]:
    headers = {
        "User-Agent": request.user_agent,
        "Accept": ACCEPT,
        "Accept-Encoding": ACCEPT_ENCODING,
    }
    if request.etag:
        headers["If-None-Match"] = request.etag
    if request.last_modified:
        headers["If-Modified-Since"] = request.last_modified
    return headers


def _next_hop(
    url: httpx.URL, response: httpx.Response, trip: _Trip, settings: FetchSettings
) -> httpx.URL:
    status = response.status_code
    if len(trip.statuses) >= settings.max_redirects:
        raise _Failure(f"too many redirects (more than {settings.max_redirects})", status=status)
    location = response.headers["location"].strip()
    try:
        target = url.join(location)
    except httpx.InvalidURL as exc:
        raise _Failure(f"invalid redirect to {location!r}: {exc}", status=status) from None
    if target.scheme not in ("http", "https"):
        raise _Failure(
            f"refused: redirect to {location!r} (only http and https redirects are followed)",
            status=status,
        )
    target_text = str(target)
    if target_text in trip.urls:
        raise _Failure("redirect loop: " + " -> ".join([*trip.urls, target_text]), status=status)
    trip.urls.append(target_text)
    trip.statuses.append(status)
    return _http_url(target_text)


def _http_url(text: str) -> httpx.URL:
    """Parse with the client's own parser, so what is checked is what gets connected to."""
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F or ch == "\\" for ch in text):
        raise _Failure(f"invalid URL {text!r}: whitespace, control characters or backslashes")
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise _Failure(f"invalid URL {text!r}: {exc}") from None
    if url.scheme not in ("http", "https"):
        raise _Failure(f"refused: {text!r} (only http, https and file URLs are fetched)")
    if url.userinfo:
        raise _Failure(f"refused: a URL for {url.host} with user info (credentials in URLs)")
    if not url.host:
        raise _Failure(f"invalid URL {text!r}: no host")
    if url.host.endswith("."):
        raise _Failure(f"invalid URL {text!r}: the host ends with a dot")
    return url


def _check_address(url: httpx.URL, settings: FetchSettings) -> None:
    """Refuse a host if any address it resolves to is not public.

    This checks before httpx connects, and httpx resolves the name again: DNS rebinding
    can slip between the two. Pinning the connection to the checked address (a transport
    that connects to the IP and keeps the Host header and TLS name) closes that gap later.
    """
    if settings.allow_private_networks:
        return
    host = url.raw_host.decode("ascii")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise _Failure(f"cannot resolve {url.host}: {reason}") from None
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        kind = address_refusal(address)
        if kind is None:
            continue
        if _ip_literal(host) == str(address):
            raise _Failure(f"refused: {address} is {kind} {_PRIVATE_HINT}")
        raise _Failure(f"refused: {url.host} resolves to {address}, {kind} {_PRIVATE_HINT}")


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


def _ip_literal(host: str) -> str | None:
    """The host as a normalized IP literal, or None when it is a name."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


class _Inflater:
    """Decodes a Content-Encoding with output bounded by the size limit.

    httpx's decoders call decompress() without a max_length, so one small compressed
    chunk could inflate to gigabytes before anything counts it.
    """

    def __init__(self, encoding: str) -> None:
        self._encoding = encoding
        self._wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
        self._decompressor = zlib.decompressobj(self._wbits) if encoding else None
        self._started = False

    @classmethod
    def for_encoding(cls, header: str) -> _Inflater | None:
        codings = [c.strip().lower() for c in header.split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        if not codings:
            return cls("")
        if len(codings) == 1 and codings[0] in ("gzip", "x-gzip", "deflate"):
            return cls("deflate" if codings[0] == "deflate" else "gzip")
        return None

    def feed(self, data: bytes, out: bytearray, limit: int) -> bool:
        """Append the decoded data to out; False when out grew past limit."""
        if self._decompressor is None:
            out += data[: limit - len(out) + 1]
            return len(out) <= limit
        while data and not self._decompressor.eof:
            try:
                piece = self._decompressor.decompress(data, limit - len(out) + 1)
            except zlib.error:
                if self._encoding != "deflate" or self._started:
                    raise
                # "deflate" should be zlib-wrapped, but some servers send raw deflate.
                self._decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
                self._started = True
                continue
            self._started = True
            out += piece
            if len(out) > limit:
                return False
            data = self._decompressor.unconsumed_tail
        return True

    def finish(self, out: bytearray, limit: int) -> bool:
        if self._decompressor is not None:
            out += self._decompressor.flush()
        return len(out) <= limit


def _fetch_file(request: FetchRequest) -> FetchResult:
    url = request.url.strip()

    def failed(error: str) -> FetchResult:
        return FetchResult(url=request.url, final_url=url, status=None, error=error)

    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        return failed(f"file URL must name a local path: {url}")
    path = unquote(parts.path)
    if not path.startswith("/"):
        return failed(f"file URL needs an absolute path: {url}")
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return failed(f"file not found: {path}")
    except OSError as exc:
        return failed(f"cannot read {path}: {exc.strerror or exc}")
    if not stat.S_ISREG(info.st_mode):
        return failed(f"not a regular file: {path}")
    if request.last_modified and _unchanged_since(info.st_mtime, request.last_modified):
        return FetchResult(
            url=request.url,
            final_url=url,
            status=304,
            etag=request.etag,
            last_modified=request.last_modified,
        )
    limit = request.settings.max_bytes
    try:
        with open(path, "rb") as file:
            body = file.read(limit + 1)
    except OSError as exc:
        return failed(f"cannot read {path}: {exc.strerror or exc}")
    if len(body) > limit:
        return failed(f"file larger than {limit} bytes: {path}")
    last_modified = formatdate(info.st_mtime, usegmt=True)
    return FetchResult(
        url=request.url,
        final_url=url,
        status=200,
        headers={"last-modified": last_modified},
        body=body,
        last_modified=last_modified,
    )


def _unchanged_since(mtime: float, if_modified_since: str) -> bool:
    """If-Modified-Since semantics: unchanged when the mtime (whole seconds) is not later."""
    try:
        since = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError):
        return False
    if since.tzinfo is None:
        return False
    return int(mtime) <= since.timestamp()


def _scheme(url: str) -> str:
    try:
        return urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return ""


def _timed_out(settings: FetchSettings) -> str:
    return f"timed out after {settings.timeout:g}s"
