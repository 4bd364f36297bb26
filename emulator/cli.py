"""Command line: `serve` runs the emulator, `env` prints the exports that point clients at it."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import re
import shlex
import signal
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import uvicorn

from emulator import __version__
from emulator.config import Settings, SettingsError, env_name, setting_fields, setting_names

DEFAULT_API_KEY = "emulator-api-key"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
log = logging.getLogger("emulator")


def _serve_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _setting_flags(sub.add_parser("serve", help="run the emulator (all APIs on one port)"))
    _setting_flags(
        sub.add_parser(
            "worker",
            help="run simulation workers only (no HTTP) on the store of --database-url, "
            "beside `serve` nodes on the same store",
        )
    )


def _setting_flags(p: argparse.ArgumentParser) -> None:
    # One flag per setting, generated so flags, variables and docs cannot drift apart.
    for name, kind, help_text, default in setting_fields():
        shown = "" if default in ((), "") else f"default {_show(default)}; "
        p.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=int if kind == "int" else str,
            help=f"{help_text} ({shown}env {env_name(name)})",
        )


def _show(default: Any) -> str:
    if isinstance(default, tuple):
        return ",".join(str(d) for d in default)
    return str(default)


def _env_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "env", help="print `export` lines that point qiskit-ibm-runtime at the emulator"
    )
    p.add_argument(
        "--url", help="emulator base URL (default http://127.0.0.1:8000, or host/port settings)"
    )
    p.add_argument("--api-key", help="API key to export (default: the first configured key)")
    p.add_argument(
        "--instance", help="instance CRN to export (default: the first configured instance)"
    )
    p.add_argument(
        "--qrmi",
        metavar="BACKEND",
        action="append",
        help="also print the {BACKEND}_QRMI_IBM_QS_* exports that point qrmi at the emulator "
        "and its built-in object store (repeatable)",
    )
    p.add_argument(
        "--qrmi-qcs",
        metavar="BACKEND",
        action="append",
        help="also print the {BACKEND}_QRMI_IBM_QCS_* exports for qrmi's Runtime resource "
        "(ResourceType.IBMQuantumComputeService) on the emulator (repeatable)",
    )
    p.add_argument(
        "--intercept",
        action="store_true",
        help="print the interception recipe instead: HTTPS_PROXY at the server's "
        "--intercept-port and its CA bundle, so code naming IBM's own URLs (or a client "
        "before 0.49) is answered locally",
    )
    p.add_argument(
        "--client-version",
        help="the qiskit-ibm-runtime version the exports are for (default: the one installed "
        "beside the emulator); clients before 0.49 ignore IAM_URL, so none are printed for them",
    )
    p.add_argument("--bucket", default="qrmi", help="object-store bucket for --qrmi (default qrmi)")
    p.add_argument(
        "--job-timeout",
        type=int,
        default=300,
        help="qrmi's job timeout for --qrmi and --qrmi-qcs (default 300)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ibmq-emulator",
        description="Local emulator of IBM Quantum's cloud APIs (not IBM Quantum).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    _env_parser(sub)
    sub.add_parser(
        "settings", help="print the configuration reference (every flag and variable) as Markdown"
    )
    return parser


def settings_reference() -> str:
    """The configuration reference table, generated from the settings (README embeds it)."""
    lines = [
        "| Flag | Environment variable | Default | Meaning |",
        "|---|---|---|---|",
    ]
    for name, _, help_text, default in setting_fields():
        if isinstance(default, tuple):
            default = ",".join(default) or "(none)"
        shown = str(default) if default != "" else "(none)"
        if len(shown) > 40:
            shown = shown[:37] + "…"
        flag = "--" + name.replace("_", "-")
        help_cell = help_text.replace("|", "\\|")
        lines.append(f"| `{flag}` | `{env_name(name)}` | `{shown}` | {help_cell} |")
    return "\n".join(lines)


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _exports(values: Mapping[str, str]) -> list[str]:
    return [f"export {k}={shlex.quote(v)}" for k, v in values.items()]


def env_lines(base_url: str, api_key: str, instance_crn: str) -> list[str]:
    """The exports of reference §2.1. `IAM_URL` is always there, so a real key never reaches IBM."""
    return _exports(_env_values(base_url, api_key, instance_crn))


def _env_values(base_url: str, api_key: str, instance_crn: str) -> dict[str, str]:
    base = base_url.rstrip("/")
    return {
        "QISKIT_IBM_TOKEN": api_key,
        # A URL containing "experimental" is the only one the client uses verbatim (port kept).
        "QISKIT_IBM_URL": f"{base}/experimental/api/v1",
        "QISKIT_IBM_INSTANCE": instance_crn,
        "QISKIT_IBM_CHANNEL": "ibm_quantum_platform",
        "IAM_URL": f"{base}/iam",
        "GLOBAL_SEARCH_URL": f"{base}/globalsearch",
        "GLOBAL_CATALOG_URL": f"{base}/globalcatalog",
    }


def _settings(args: argparse.Namespace, names: Sequence[str]) -> Settings:
    cli = {n: getattr(args, n, None) for n in names}
    try:
        settings = Settings.from_sources(cli)
    except SettingsError as exc:
        sys.exit(f"error: {exc}")
    if settings.device == "GPU" and settings.workers:
        from emulator.simulation.noise import gpu_available

        if not gpu_available():
            sys.exit(
                "error: device: GPU, but qiskit-aer sees no GPU here (install qiskit-aer-gpu "
                "on a machine with a CUDA GPU, or use --device CPU)"
            )
    return settings


def qrmi_lines(
    backend: str,
    base_url: str,
    api_key: str,
    instance_crn: str,
    bucket: str,
    timeout: int,
    settings: Settings,
    info: dict[str, Any],
) -> list[str]:
    """qrmi's variables for one backend (reference DA §8.2): API, IAM and S3 all on the emulator.

    The object-store key is the exported instance's: the first of `EMULATOR_S3_CREDENTIALS`
    for it, else its default pair; instances as the server lists them, else as configured here.
    """
    from emulator.api.storage.credentials import access_key_for_env
    from emulator.config import Instance

    served = [Instance(crn=i["crn"], name=i["name"]) for i in info.get("instances") or []]
    try:
        s3_key = access_key_for_env(
            settings.s3_credentials, served or settings.instance_list, instance_crn
        )
    except ValueError as exc:
        sys.exit(f"error: {exc}")
    if info.get("s3_credentials_required") and not settings.s3_credentials:
        print(
            "# note: this emulator's object store only accepts its configured keys; set "
            "EMULATOR_S3_CREDENTIALS as the server has it.",
            file=sys.stderr,
        )
    base = base_url.rstrip("/")
    values = {
        "QRMI_IBM_QS_ENDPOINT": base,
        "QRMI_IBM_QS_IAM_ENDPOINT": f"{base}/iam",
        "QRMI_IBM_QS_IAM_APIKEY": api_key,
        "QRMI_IBM_QS_SERVICE_CRN": instance_crn,
        "QRMI_JOB_TIMEOUT_SECONDS": str(timeout),
        "QRMI_IBM_QS_S3_ENDPOINT": base,
        "QRMI_IBM_QS_S3_BUCKET": bucket,
        "QRMI_IBM_QS_S3_REGION": "us-east-1",
        "QRMI_IBM_QS_AWS_ACCESS_KEY_ID": s3_key.access_key,
        "QRMI_IBM_QS_AWS_SECRET_ACCESS_KEY": s3_key.secret,
    }
    return [f"export {backend}_{k}={shlex.quote(v)}" for k, v in values.items()]


def qrmi_qcs_lines(
    backend: str, base_url: str, api_key: str, instance_crn: str, timeout: int
) -> list[str]:
    """qrmi's variables for its Runtime (Quantum Compute Service) resource on one backend: the
    Runtime API and IAM on the emulator (no object store: jobs go through the API)."""
    base = base_url.rstrip("/")
    values = {
        "QRMI_IBM_QCS_ENDPOINT": f"{base}/api/v1",
        "QRMI_IBM_QCS_IAM_ENDPOINT": f"{base}/iam",
        "QRMI_IBM_QCS_IAM_APIKEY": api_key,
        "QRMI_IBM_QCS_SERVICE_CRN": instance_crn,
        "QRMI_IBM_QCS_TIMEOUT_SECONDS": str(timeout),
    }
    return [f"export {backend}_{k}={shlex.quote(v)}" for k, v in values.items()]


def _served(url: str, document: str) -> dict[str, Any]:
    """A running emulator's `/_emulator/{document}`, so `env` matches however it was started
    ({} when nothing answers)."""
    import httpx

    try:
        response = httpx.get(url.rstrip("/") + f"/_emulator/{document}", timeout=2.0)
        if response.status_code == 200:
            body: dict[str, Any] = response.json()
            return body
    except (httpx.HTTPError, ValueError):
        pass
    return {}


def _served_info(url: str) -> dict[str, Any]:
    return _served(url, "info")


FIRST_CLIENT_WITH_IAM_URL = (0, 49)
"""qiskit-ibm-runtime 0.49 is the first that reads IAM_URL; older ones derive IAM's host."""


def _client_version(asked: str | None) -> str | None:
    if asked:
        return asked
    try:
        from importlib.metadata import version

        return version("qiskit-ibm-runtime")
    except Exception:  # noqa: BLE001 - not installed: nothing to warn about
        return None


def _release(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


FIRST_CLIENT_WITH_PLATFORM_CHANNEL = (0, 40)
"""Before it, the cloud channel is `ibm_cloud` (0.30 refuses `ibm_quantum_platform`)."""


def intercept_lines(
    base_url: str,
    api_key: str,
    instance_crn: str,
    proxy_port: int,
    ca: str,
    channel: str = "ibm_quantum_platform",
) -> list[str]:
    """Interception mode: IBM's own URLs go through the emulator's proxy (which answers them
    itself and refuses any other host); loopback stays direct. No QISKIT_IBM_URL: code that
    names none, or IBM's, reaches the proxy."""
    proxy = f"http://127.0.0.1:{proxy_port}"
    values = {
        "HTTPS_PROXY": proxy,
        "HTTP_PROXY": proxy,
        "NO_PROXY": "127.0.0.1,localhost,::1",
        "REQUESTS_CA_BUNDLE": ca,
        "SSL_CERT_FILE": ca,
        # Clients that read IAM_URL and the Search/Catalog URLs use the emulator directly;
        # older ones reach the proxy.
        **_env_values(base_url, api_key, instance_crn),
        "QISKIT_IBM_CHANNEL": channel,
    }
    del values["QISKIT_IBM_URL"]
    return _exports(values)


def cmd_env(args: argparse.Namespace) -> int:
    client = _client_version(args.client_version)
    old_client = client is not None and _release(client)[:2] < FIRST_CLIENT_WITH_IAM_URL
    if old_client and not args.intercept:
        # Never print a recipe that would send the API key to IBM: such a client ignores
        # IAM_URL and asks IBM's IAM host (derived from the URL, or iam.cloud.ibm.com).
        print(
            f"# qiskit-ibm-runtime {client} ignores IAM_URL (0.49 was the first to read it): "
            "with these exports it would send the API key to IBM's IAM host, so none are "
            "printed. Use qiskit-ibm-runtime >= 0.49, or the interception mode: serve with "
            "--intercept-port PORT, then `env --intercept`.",
            file=sys.stderr,
        )
        return 3
    settings = _settings(args, [])
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    url = args.url or f"http://{host}:{settings.port}"
    intercept: dict[str, Any] | None = None
    if args.intercept:
        intercept = _served(url, "health").get("intercept")
        if not intercept:
            print(
                f"# the emulator at {url} does not intercept: start it with --intercept-port "
                "PORT (EMULATOR_INTERCEPT_PORT), then run `env --intercept` again.",
                file=sys.stderr,
            )
            return 2
    if not is_loopback(url):
        print(
            f"# note: {url} is not a loopback address; clients will send requests there.",
            file=sys.stderr,
        )
    info = _served_info(url)
    configured_key = settings.api_keys[0].partition("=")[0] if settings.api_keys else None
    api_key = args.api_key or configured_key or DEFAULT_API_KEY
    if info.get("api_keys_required") and not (args.api_key or configured_key):
        print(
            "# note: this emulator only accepts its configured API keys; pass --api-key KEY.",
            file=sys.stderr,
        )
    instance = args.instance or info.get("default_instance") or settings.default_instance.crn
    if intercept is not None:
        channel = "ibm_quantum_platform"
        if client is not None and _release(client)[:2] < FIRST_CLIENT_WITH_PLATFORM_CHANNEL:
            channel = "ibm_cloud"
        port, ca = int(intercept["port"]), str(intercept["ca"])
        print("\n".join(intercept_lines(url, api_key, instance, port, ca, channel)))
        return 0
    lines = env_lines(url, api_key, instance)
    for backend in args.qrmi or []:
        lines += qrmi_lines(
            backend, url, api_key, instance, args.bucket, args.job_timeout, settings, info
        )
    for backend in args.qrmi_qcs or []:
        lines += qrmi_qcs_lines(backend, url, api_key, instance, args.job_timeout)
    print("\n".join(lines))
    return 0


class _GracefulServer(uvicorn.Server):
    """uvicorn re-raises SIGTERM/SIGINT after shutting down, so a clean stop looked like a
    kill (exit -15). A requested shutdown that completed is a success: exit 0. And before it
    waits for open requests, the app's `before_shutdown` ends its held status polls."""

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        release = getattr(self.config.app, "before_shutdown", None)
        if release is not None:
            release()
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def cmd_serve(args: argparse.Namespace) -> int:
    from emulator.app import create_app
    from emulator.execution.worker import memory_limit_mb
    from emulator.server import raise_open_file_limit, server_config

    settings = _settings(args, setting_names())
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Before the listener opens: --max-connections, not the fd limit, is what clients hit.
    raise_open_file_limit(settings)
    memory = memory_limit_mb(settings.worker_memory_mb, settings.workers)
    memory_text = f" ({memory} MiB of memory each)" if settings.workers and memory else ""
    url = f"http://{settings.host}:{settings.port}"
    # Bound to every interface (a container, a workshop): this machine reaches it on loopback.
    local = settings.host in ("0.0.0.0", "::")
    client_url = f"http://127.0.0.1:{settings.port}" if local else url
    store = "external database" if settings.database_url else "SQLite"
    print(
        f"IBM Quantum API emulator {__version__} — an emulator, not IBM Quantum.\n"
        f"  listening on {url}\n"
        f"  data in {settings.data_dir.resolve()} ({store})\n"
        f"  backends: {', '.join(settings.backends)}; workers: {settings.workers}{memory_text}\n"
        f"  dashboard: {client_url}/_emulator/\n"
        f'  point clients at it: eval "$(python -m emulator env --url {client_url})"',
        flush=True,
    )
    try:
        app = create_app(settings)
    except ValueError as exc:  # e.g. --s3-credentials naming an unknown instance
        sys.exit(f"error: {exc}")
    _GracefulServer(server_config(app, settings)).run()
    log.info("emulator stopped")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """A worker node: claims and runs jobs of the shared store, heartbeats, no HTTP. SIGTERM or
    Ctrl-C stops it cleanly: its running jobs go back to Queued without spending an attempt."""
    from emulator.app import build_worker_node

    settings = _settings(args, setting_names())
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not settings.database_url:
        # A worker beside a `serve` on the same machine may share its SQLite file instead.
        print(f"  no --database-url: using the SQLite store in {settings.data_dir.resolve()}")
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in STOP_SIGNALS}
    try:
        node = build_worker_node(settings)
        print(
            f"IBM Quantum API emulator {__version__} — worker node {node.pool.pool_id}: "
            f"{settings.workers} simulation process(es) on "
            f"{'the external database' if settings.database_url else 'SQLite'}",
            flush=True,
        )
        node.start()
        stop.wait()
        log.info("worker node %s stopping", node.pool.pool_id)
        node.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("worker node stopped")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "env":
        return cmd_env(args)
    if args.command == "settings":
        print(settings_reference())
        return 0
    if args.command == "worker":
        return cmd_worker(args)
    return cmd_serve(args)
