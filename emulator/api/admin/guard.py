"""Who may use the control plane: the Host it is reached by, the page a request comes from,
the admin token, and the media type of what it sends.

A browser lets any page it shows send requests to loopback. So changes coming from another
site are refused (`Sec-Fetch-Site`, `Origin`); a body must be JSON, which no HTML form can
send and a script can send cross-site only after a CORS preflight, which fails (no CORS
headers are ever sent); and a foreign `Host` is refused, so a page on a DNS name rebound to
loopback is not taken for this server's own origin.
"""

from __future__ import annotations

import hmac
import logging
import re
from dataclasses import dataclass
from email.message import Message
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as AsgiMessage

from emulator.api.admin import errors
from emulator.config import Settings

log = logging.getLogger("emulator.api.admin")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_READS = frozenset({"/", "/health", "/info", "/openapi.json"})
"""Routes (under `/_emulator`) readable without the admin token: the dashboard page, and what
non-admin tools need (`/health`, the summary of `/info`); the rest shows every tenant's data."""

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
ANY_INTERFACE = frozenset({"", "0.0.0.0", "::"})
DEFAULT_PORTS = {"http": 80, "https": 443}
_NAME = re.compile(r"^(?:[a-z0-9_-]+(?:\.[a-z0-9_-]+)*|[0-9a-f:.]+)$")

# Every answer of the control plane; the dashboard sets its own Content-Security-Policy.
COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
JSON_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def split_host(value: str) -> tuple[str, int | None] | None:
    """`name`, `name:port`, `[v6]:port` or a bare IPv6 literal → (lowercase name, port or
    None); None when it is not a valid Host value."""
    value = value.strip()
    if value.count(":") > 1 and not value.startswith("["):
        value = f"[{value}]"  # a bare IPv6 literal (`::1`) has no port
    try:
        parts = urlsplit("//" + value)
        port = parts.port
    except ValueError:
        return None
    name = (parts.hostname or "").rstrip(".")
    if parts.username is not None or parts.path or parts.query or parts.fragment:
        return None
    if not _NAME.match(name):
        return None
    return name, port


@dataclass(frozen=True)
class HostPolicy:
    """The Host values the control plane answers to."""

    names: frozenset[str]  # any port
    pairs: frozenset[tuple[str, int]]  # this port only
    any_host: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> HostPolicy:
        names, pairs, any_host = set(LOOPBACK_NAMES), set(), False
        if settings.host not in ANY_INTERFACE:
            bound = split_host(settings.host)
            if bound is not None:
                names.add(bound[0])
        for entry in settings.allowed_hosts:
            if entry.strip() == "*":
                any_host = True
                continue
            parsed = split_host(entry)
            if parsed is None:
                log.warning("allowed_hosts: ignoring %r (not a host or host:port)", entry)
            elif parsed[1] is None:
                names.add(parsed[0])
            else:
                pairs.add((parsed[0], parsed[1]))
        return cls(frozenset(names), frozenset(pairs), any_host)

    def allows(self, host: str, scheme: str = "http") -> bool:
        parsed = split_host(host)
        if parsed is None:
            return False
        name, port = parsed[0], parsed[1] or DEFAULT_PORTS.get(scheme, 80)
        return (
            self.any_host
            or name in self.names
            or name.endswith(".localhost")
            or (name, port) in self.pairs
        )


def same_origin(origin: str, scheme: str, host: str) -> bool:
    """Whether `Origin` is `scheme://host` of this request (default ports made explicit)."""
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme not in DEFAULT_PORTS or parts.path or parts.query or not parts.hostname:
        return False
    own = split_host(host)
    if own is None or parts.scheme != scheme:
        return False
    theirs = parts.hostname.rstrip("."), port or DEFAULT_PORTS[parts.scheme]
    return theirs == (own[0], own[1] or DEFAULT_PORTS.get(scheme, 80))


def holds_token(headers: Headers, token: str) -> bool:
    """`Authorization: Bearer <token>`, compared in constant time."""
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        credentials.strip().encode(), token.encode()
    )


def route_path(scope: Scope) -> str:
    """The path below the mount point (`/_emulator`)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def check(scope: Scope, settings: Settings, hosts: HostPolicy) -> JSONResponse | None:
    """The refusal for this request, or None; records in `scope["state"]["admin"]` whether the
    caller may see every tenant's data."""
    headers = Headers(scope=scope)
    method: str = scope["method"]
    scheme: str = scope.get("scheme", "http")
    host_values = headers.getlist("host")
    if len(host_values) != 1 or not hosts.allows(host_values[0], scheme):
        return errors.envelope(
            400,
            "Invalid Host header: the control plane answers only to loopback names, the bind "
            "address and --allowed-hosts (EMULATOR_ALLOWED_HOSTS).",
            "Host",
        )
    if method not in SAFE_METHODS:
        fetch_site = headers.get("sec-fetch-site")
        if fetch_site is not None and fetch_site.lower() not in ("same-origin", "none"):
            return errors.envelope(
                403, f"Cross-site request refused (Sec-Fetch-Site: {fetch_site}).", "Sec-Fetch-Site"
            )
        origin = headers.get("origin")
        if origin is not None and not same_origin(origin, scheme, host_values[0]):
            return errors.envelope(
                403, f"Cross-origin request refused (Origin: {origin}).", "Origin"
            )
    token = settings.admin_token
    admin = not token or holds_token(headers, token)
    scope.setdefault("state", {})["admin"] = admin
    public = method in ("GET", "HEAD") and route_path(scope) in PUBLIC_READS
    if not admin and not public:
        response = errors.envelope(
            401, "The control plane needs `Authorization: Bearer <admin token>`.", "Authorization"
        )
        response.headers["WWW-Authenticate"] = 'Bearer realm="emulator control plane"'
        return response
    if method not in SAFE_METHODS:
        return _media_type_refusal(headers)
    return None


def _media_type_refusal(headers: Headers) -> JSONResponse | None:
    declared = headers.get("content-type")
    length = headers.get("content-length", "")
    has_body = "transfer-encoding" in headers or length.strip() not in ("", "0")
    if declared is None and not has_body:
        return None  # no body: routes that take none, or that say which field is missing
    message = Message()
    message["content-type"] = declared or ""
    if declared is None or message.get_content_type() != "application/json":
        return errors.envelope(
            415,
            f"The body must be Content-Type: application/json (got {declared or 'none'}).",
            "Content-Type",
        )
    return None


def is_admin(request: Request) -> bool:
    """Whether the caller may see every tenant's data (set by `AdminGuard`)."""
    return bool(getattr(request.state, "admin", False))


class AdminGuard:
    """Refuses what `check` refuses, before any route runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._hosts: tuple[Settings, HostPolicy] | None = None

    def _policy(self, settings: Settings) -> HostPolicy:
        if self._hosts is None or self._hosts[0] is not settings:
            self._hosts = (settings, HostPolicy.from_settings(settings))
        return self._hosts[1]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            settings: Settings = scope["app"].state.emulator.settings
            refusal = check(scope, settings, self._policy(settings))
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


class SecurityHeaders:
    """Adds `COMMON_HEADERS` (and a deny-all CSP unless the route set one) to every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: AsgiMessage) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in COMMON_HEADERS.items():
                    headers[name] = value
                if "content-security-policy" not in headers:
                    headers["Content-Security-Policy"] = JSON_CSP
            await send(message)

        await self.app(scope, receive, send_with_headers)
