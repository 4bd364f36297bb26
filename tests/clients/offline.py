"""Run the interception recipe where no network exists: inside a network namespace that has
only loopback (`unshare -rn`), a server and a client that names IBM's own URLs. Any request
that tried to leave loopback would fail (the network is unreachable), so a completed job
proves that every request was answered on this machine.

    unshare -rn python tests/clients/offline.py [CLIENT_PYTHON]
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from emulator.testing import EmulatorServer, emulator_env, free_port  # noqa: E402

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def loopback_up() -> None:
    """A new network namespace starts with `lo` down: bring it up (no `ip` needed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14s", b"lo", 0, b"\0" * 14)
        flags = struct.unpack("16sH14s", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags | IFF_UP, b"\0" * 14))


def main(client_python: str, script: str) -> int:
    loopback_up()
    with socket.socket() as probe:  # the namespace really has no way out
        probe.settimeout(2)
        assert probe.connect_ex(("192.0.2.1", 443)) != 0
    with tempfile.TemporaryDirectory() as data:
        server = EmulatorServer(Path(data), "--intercept-port", str(free_port()), workers=1)
        server.start()
        try:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("QISKIT_", "IBMQ_"))}
            env.update(emulator_env(server.url, "--intercept"))
            env["IBMQ_EMULATOR_URL"] = server.url  # the scenario's control-plane calls
            done = subprocess.run([client_python, script], env=env, timeout=600)
            print("intercept:", server.health()["intercept"])
            return done.returncode
        finally:
            server.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
