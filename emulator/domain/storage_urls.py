"""Which presigned storage URLs a Direct Access job may name (and a worker may then fetch).

The worker GETs and PUTs these URLs from inside the emulator, so without a rule a client could
make it request anything the server can reach: the emulator's own control plane, a service on
the host, another network. The rule: `http`/`https` only; the host must be loopback, this
server, or on `--storage-allowed-hosts`; and a URL on this server must be an object-store
request (SigV4 presigned), never one of its API routes.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from emulator.domain.errors import InvalidRequest

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback"})
# The emulator's own non-storage routes: never a storage URL, whatever the query says.
API_PREFIXES = ("/api/", "/v1/", "/_emulator", "/iam/", "/globalsearch", "/globalcatalog")
_PRESIGN_MARKERS = frozenset({"x-amz-signature", "x-amz-credential", "x-amz-algorithm"})


@dataclass(frozen=True)
class StoragePolicy:
    """The hosts storage URLs may name; `server` is this emulator's (host, port)."""

    server_port: int
    server_host: str = "127.0.0.1"
    extra_hosts: tuple[str, ...] = ()

    @property
    def any_host(self) -> bool:
        return "*" in self.extra_hosts

    def check(self, url: str, field: str) -> None:
        """Raise InvalidRequest naming `field` unless `url` may be used."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise InvalidRequest(field, "is not a valid URL") from None
        if parts.scheme not in ("http", "https"):
            raise InvalidRequest(field, "must be an http(s) URL")
        host = (parts.hostname or "").lower()
        if not host:
            raise InvalidRequest(field, "must name a host")
        if parts.username or parts.password:
            raise InvalidRequest(field, "must not carry credentials in the URL")
        port = port or (443 if parts.scheme == "https" else 80)
        if self._is_this_server(host, port):
            self._check_own(parts.path, parts.query, field)
            return
        if not (self.any_host or _is_loopback(host) or self._listed(host, port)):
            raise InvalidRequest(
                field,
                f"host {host} is not allowed for storage (loopback, this server and "
                "--storage-allowed-hosts are)",
            )

    def _is_this_server(self, host: str, port: int) -> bool:
        if port != self.server_port:
            return False
        # Bound to every interface, the server is still named here by loopback (or by a name
        # listed in --storage-allowed-hosts, which is then checked like any storage host).
        return _is_loopback(host) or host == self.server_host.lower()

    def _listed(self, host: str, port: int) -> bool:
        return any(
            name == host and wanted in (None, port)
            for name, wanted in map(_host_entry, self.extra_hosts)
        )

    @staticmethod
    def _check_own(path: str, query: str, field: str) -> None:
        if path.startswith(API_PREFIXES) or path in ("/", "", "/version", "/versions"):
            raise InvalidRequest(field, "must not name one of the emulator's API routes")
        names = {name.lower() for name, _ in parse_qsl(query, keep_blank_values=True)}
        if not names & _PRESIGN_MARKERS:
            raise InvalidRequest(
                field, "on this server must be a presigned object-store URL (X-Amz-Signature)"
            )


def _host_entry(entry: str) -> tuple[str, int | None]:
    """`name`, `name:port`, `[v6]` or `[v6]:port` → (host, port or None)."""
    entry = entry.strip().lower()
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    name, sep, port = entry.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        return name, int(port)
    return entry, None


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
