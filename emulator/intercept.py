"""Interception mode: an HTTP(S) forward proxy that answers IBM's own URLs locally.

Code that names IBM's hosts (a notebook's `QiskitRuntimeService(token=…)` with no URL, clients
before 0.49 that ignore `IAM_URL`) runs unchanged with `HTTPS_PROXY` pointing here: a CONNECT
to one of IBM's hosts is terminated with a certificate for that host, issued by a local CA
that lives in the data dir (created on first use, key mode 0600, never shipped), and each
request inside is served by the emulator's own port on loopback, under the path its host
stands for (`iam.cloud.ibm.com` → `/iam`, …). Every other CONNECT is refused with a 403 and
counted: the proxy itself never opens a connection beyond loopback.
"""

from __future__ import annotations

import asyncio
import datetime
import fnmatch
import logging
import os
import ssl
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

import h11
import httpx

log = logging.getLogger("emulator.intercept")

# IBM's hosts (patterns) → the emulator's path prefix that serves them.
HOSTS: tuple[tuple[str, str], ...] = (
    ("iam.cloud.ibm.com", "/iam"),
    ("iam.test.cloud.ibm.com", "/iam"),
    ("api.global-search-tagging.cloud.ibm.com", "/globalsearch"),
    ("globalcatalog.cloud.ibm.com", "/globalcatalog"),
    ("quantum.cloud.ibm.com", ""),
    ("*.quantum.cloud.ibm.com", ""),
    ("direct-access*.quantum-computing.cloud.ibm.com", ""),  # the Direct Access API (/v1)
    # The ibm_cloud channel's Runtime hosts (clients before ibm_quantum_platform): the same
    # API without its /api/v1 prefix.
    ("*.quantum-computing.cloud.ibm.com", "/api/v1"),
)
MAX_HEAD = 16 * 1024
"""Largest CONNECT request head read (a real one is a few hundred bytes)."""
_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"}


def prefix_for(host: str) -> str | None:
    """The emulator path that serves `host`, or None for a host that is not IBM's."""
    host = host.lower().rstrip(".")
    for pattern, prefix in HOSTS:
        if fnmatch.fnmatchcase(host, pattern):
            return prefix
    return None


# -- the local certificate authority ------------------------------------------------------------


class LocalCA:
    """A CA key and certificate in `directory` (created once), and leaf certificates per host."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.cert_path = directory / "ca.pem"
        self.key_path = directory / "ca-key.pem"
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._lock = threading.Lock()
        self._ensure()

    def _ensure(self) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        if self.cert_path.exists() and self.key_path.exists():
            self._key = serialization.load_pem_private_key(self.key_path.read_bytes(), None)
            self._cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "IBM Quantum emulator local CA")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        pem_key = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # The key is created readable by its owner only, before any byte is written.
        fd = os.open(self.key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem_key)
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self._key, self._cert = key, cert

    def context_for(self, host: str) -> ssl.SSLContext:
        """A server-side TLS context presenting a certificate for `host`, issued once."""
        with self._lock:
            found = self._contexts.get(host)
            if found is not None:
                return found
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self._key, hashes.SHA256())  # type: ignore[arg-type]
        )
        leaf = self.directory / f"leaf-{host}.pem"
        fd = os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            handle.write(cert.public_bytes(serialization.Encoding.PEM))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(leaf)
        with self._lock:
            return self._contexts.setdefault(host, context)


# -- the proxy ----------------------------------------------------------------------------------


@dataclass
class InterceptStats:
    """What the proxy answered and refused (shown by `/_emulator/health`)."""

    served: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    last_refused: deque[str] = field(default_factory=lambda: deque(maxlen=10))

    def to_json(self) -> dict[str, object]:
        return {
            "served": dict(self.served),
            "refused": sum(self.refused.values()),
            "last_refused": list(self.last_refused),
        }


class InterceptProxy:
    """The forward proxy on `port`, relaying IBM's hosts to the emulator on `upstream`."""

    def __init__(self, ca: LocalCA, upstream: str, host: str = "127.0.0.1", port: int = 0):
        self.ca = ca
        self.upstream = upstream.rstrip("/")
        self.host = host
        self.port = port
        self.stats = InterceptStats()
        self._server: asyncio.base_events.Server | None = None
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._client = httpx.AsyncClient(base_url=self.upstream, timeout=None, trust_env=False)
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("intercepting IBM's hosts on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._client is not None:
            await self._client.aclose()

    def _refuse(self, host: str) -> None:
        self.stats.refused[host] += 1
        self.stats.last_refused.append(host)
        log.warning("intercept: refused %s (not one of IBM's hosts)", host)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split()
        try:
            if len(parts) == 3 and parts[0] == "CONNECT":
                await self._tunnel(parts[1], reader, writer)
            else:
                # IBM's URLs are all https (CONNECT): a plain-HTTP proxy request is refused.
                target = parts[1] if len(parts) > 1 else "?"
                self._refuse(httpx.URL(target).host if target.startswith("http") else target)
                writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (ConnectionError, ssl.SSLError, h11.RemoteProtocolError) as exc:
            log.debug("intercept: connection ended: %s", exc)
        finally:
            writer.close()

    async def _tunnel(
        self, authority: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        host = authority.rsplit(":", 1)[0].strip("[]")
        prefix = prefix_for(host)
        if prefix is None:
            self._refuse(host)
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        await writer.drain()
        await writer.start_tls(self.ca.context_for(host))
        await self._serve(host, prefix, reader, writer)

    async def _serve(
        self, host: str, prefix: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """HTTP/1.1 requests of one connection, relayed to the emulator, until it closes."""
        assert self._client is not None
        conn = h11.Connection(h11.SERVER)
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                conn.receive_data(data)
                if not data and conn.their_state is h11.IDLE:
                    return
                continue
            if not isinstance(event, h11.Request):
                return  # the client closed (ConnectionClosed) or broke the protocol
            body = bytearray()
            while True:
                part = conn.next_event()
                if part is h11.NEED_DATA:
                    conn.receive_data(await reader.read(65536))
                    continue
                if isinstance(part, h11.Data):
                    body += part.data
                    continue
                break  # EndOfMessage
            headers = [
                (k.decode("latin-1"), v.decode("latin-1"))
                for k, v in event.headers
                if k.decode("latin-1").lower() not in _HOP and k.lower() != b"host"
            ]
            path = prefix + event.target.decode("latin-1")
            self.stats.served[host] += 1
            response = await self._client.request(
                event.method.decode("latin-1"), path, headers=headers, content=bytes(body)
            )
            content = response.content
            # httpx decoded the body: its length and encoding are the emulator's to restate.
            dropped = _HOP | {"content-length", "content-encoding"}
            out_headers = [
                (k, v)
                for k, v in response.headers.raw
                if k.decode("latin-1").lower() not in dropped
            ]
            out_headers.append((b"content-length", str(len(content)).encode()))
            reply = h11.Response(status_code=response.status_code, headers=out_headers)
            writer.write(conn.send(reply))
            writer.write(conn.send(h11.Data(data=content)))
            writer.write(conn.send(h11.EndOfMessage()))
            await writer.drain()
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()
