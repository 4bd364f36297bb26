"""The interception proxy's host table and local CA."""

from __future__ import annotations

import ssl
import stat
from pathlib import Path

import pytest

from emulator.intercept import LocalCA, prefix_for


@pytest.mark.parametrize(
    ("host", "prefix"),
    [
        ("iam.cloud.ibm.com", "/iam"),
        ("IAM.cloud.ibm.com.", "/iam"),
        ("quantum.cloud.ibm.com", ""),
        ("eu-de.quantum.cloud.ibm.com", ""),
        ("api.global-search-tagging.cloud.ibm.com", "/globalsearch"),
        ("globalcatalog.cloud.ibm.com", "/globalcatalog"),
        ("us-east.quantum-computing.cloud.ibm.com", "/api/v1"),
        ("direct-access-abc.quantum-computing.cloud.ibm.com", ""),
        ("cloud.ibm.com", None),
        ("quantum.cloud.ibm.com.evil.example", None),
        ("evilquantum.cloud.ibm.com", None),
        ("example.com", None),
    ],
)
def test_only_ibms_hosts_are_served(host: str, prefix: str | None) -> None:
    assert prefix_for(host) == prefix


def test_the_ca_is_created_once_per_data_dir_and_issues_host_certificates(
    tmp_path: Path,
) -> None:
    ca = LocalCA(tmp_path / "intercept")
    first = ca.cert_path.read_bytes()
    assert stat.S_IMODE(ca.key_path.stat().st_mode) == 0o600
    assert LocalCA(tmp_path / "intercept").cert_path.read_bytes() == first  # reused, not new
    context = ca.context_for("quantum.cloud.ibm.com")
    assert (
        isinstance(context, ssl.SSLContext) and ca.context_for("quantum.cloud.ibm.com") is context
    )
    # A client trusting only this CA verifies the host's certificate.
    client = ssl.create_default_context(cafile=str(ca.cert_path))
    import socket
    import threading

    server_sock, client_sock = socket.socketpair()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            with context.wrap_socket(server_sock, server_side=True) as tls:
                tls.recv(1)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    with client.wrap_socket(client_sock, server_hostname="quantum.cloud.ibm.com") as tls:
        tls.sendall(b"x")
    thread.join(10)
    assert not errors
    with pytest.raises(ssl.SSLCertVerificationError):
        other_server, other_client = socket.socketpair()
        threading.Thread(
            target=lambda: _quietly(context.wrap_socket, other_server, server_side=True)
        ).start()
        client.wrap_socket(other_client, server_hostname="example.com")


def _quietly(call: object, *args: object, **kwargs: object) -> None:
    try:
        call(*args, **kwargs)  # type: ignore[operator]
    except (ssl.SSLError, OSError):
        pass
