"""Requests per second and latency of the read paths clients poll; prints figures.

    python bench/throughput.py                         # starts `serve --workers 1`
    python bench/throughput.py --url URL               # a running emulator
    python bench/throughput.py --connections 1,50 --duration 3
    python bench/throughput.py --scale-out postgresql+psycopg://…/db   # 1 and 2 API nodes

Drives `wrk` when it is on PATH (Debian: `apt-get install wrk`), else a small asyncio client
(said in the output; it is itself Python, so its figures are a floor of the load it can make,
not of the server). Requests: health, a completed job's status (as the client polls it),
backend status, a job list page, and a mix of status polls and lists (the mixed row). Beside
them, the same figures for a bare Starlette endpoint on uvicorn with the same HTTP protocol:
the floor of this stack on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from emulator.testing import EmulatorServer, free_port, wait_until  # noqa: E402

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

FLOOR_APP = textwrap.dedent(
    """
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def status(request):
        return JSONResponse({"status": "Completed", "id": request.path_params["id"]})

    app = Starlette(routes=[Route("/jobs/{id}", status)])
    """
)


def token(url: str) -> str:
    response = httpx.post(
        url + "/iam/identity/token",
        data={"grant_type": "urn:ibm:params:oauth:grant-type:apikey", "apikey": "bench"},
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def completed_jobs(url: str, headers: dict[str, str], count: int) -> list[str]:
    """`count` completed Sampler jobs (so a list page is a full page of 10)."""
    body = json.loads((FIXTURES / "post_jobs_sampler_body.json").read_text())
    ids = [
        str(httpx.post(url + "/api/v1/jobs", json=body, headers=headers).json()["id"])
        for _ in range(count)
    ]
    for job_id in ids:
        wait_until(
            lambda job_id=job_id: (
                httpx.get(f"{url}/api/v1/jobs/{job_id}", headers=headers).json()["state"]["status"]
                == "Completed"
            ),
            timeout=120,
        )
    return ids


def run_wrk(
    urls: list[str], connections: int, duration: float, headers: dict[str, str]
) -> tuple[float, float, float]:
    """(req/s, p50 ms, p99 ms) from wrk; several URLs are taken in turn (a Lua script)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        paths = ", ".join(json.dumps(httpx.URL(u).raw_path.decode()) for u in urls)
        header_lines = "".join(
            f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n" for k, v in headers.items()
        )
        script.write(
            header_lines
            + f"local paths = {{{paths}}}\nlocal i = 0\n"
            + "request = function()\n  i = i % #paths + 1\n"
            + "  return wrk.format(nil, paths[i])\nend\n"
        )
    try:
        out = subprocess.run(
            [
                "wrk",
                f"-t{min(2, connections)}",
                f"-c{connections}",
                f"-d{max(1, round(duration))}s",
                "--timeout",
                "10s",
                "--latency",
                "-s",
                script.name,
                urls[0],
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50, p99 = (_percentile(out, p) for p in ("50", "99"))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        print(f"  ({errors.group(1)} non-2xx responses)")
    return rate, p50, p99


def _percentile(wrk_output: str, percent: str) -> float:
    """A latency percentile of wrk's --latency table, in ms."""
    found = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", wrk_output, re.M)
    assert found is not None, wrk_output
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]
    return float(found.group(1)) * scale


def run_asyncio(
    urls: list[str], connections: int, duration: float, headers: dict[str, str]
) -> tuple[float, float, float]:
    async def main() -> tuple[float, float, float]:
        latencies: list[float] = []
        deadline = time.perf_counter() + duration
        limits = httpx.Limits(max_connections=connections)
        async with httpx.AsyncClient(headers=headers, limits=limits, timeout=30) as client:

            async def loop(offset: int) -> None:
                i = offset
                while time.perf_counter() < deadline:
                    start = time.perf_counter()
                    await client.get(urls[i % len(urls)])
                    latencies.append(time.perf_counter() - start)
                    i += 1

            began = time.perf_counter()
            await asyncio.gather(*(loop(i) for i in range(connections)))
            elapsed = time.perf_counter() - began
        latencies.sort()
        return (
            len(latencies) / elapsed,
            statistics.median(latencies) * 1000,
            latencies[int(len(latencies) * 0.99) - 1] * 1000,
        )

    return asyncio.run(main())


def scale_out(database_url: str, nodes: int, duration: float, tmp: Path) -> None:
    """Status polls of one completed job spread over 1..`nodes` API nodes sharing a
    PostgreSQL store: 50 connections in all, one wrk per node; req/s summed."""
    if not shutil.which("wrk"):
        print("scale-out rows need wrk (one load generator per node)")
        return
    servers = [
        EmulatorServer(tmp / f"node{i}", "--database-url", database_url, workers=1).start()
        for i in range(nodes)
    ]
    try:
        headers = {"Authorization": f"Bearer {token(servers[0].url)}"}
        job_id = completed_jobs(servers[0].url, headers, 1)[0]
        path = f"/api/v1/jobs/{job_id}?exclude_params=true"
        print("job status on API nodes sharing PostgreSQL, 50 connections in all:")
        for used in range(1, nodes + 1):
            results: list[tuple[float, float, float]] = []

            def drive(
                server: EmulatorServer, out: list[tuple[float, float, float]], n: int
            ) -> None:
                out.append(run_wrk([server.url + path], n, duration, headers))

            threads = [
                threading.Thread(target=drive, args=(s, results, 50 // used))
                for s in servers[:used]
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            total = sum(r[0] for r in results)
            print(f"  {used} node(s): {total:6.0f} req/s, p99 {max(r[2] for r in results):6.1f} ms")
    finally:
        for server in servers:
            server.stop()


def floor_server(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    (tmp / "floor_app.py").write_text(FLOOR_APP)
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(tmp),
            "--http",
            "httptools",  # the emulator's parser (emulator/server.py)
            "--no-access-log",
            "--port",
            str(port),
            "floor_app:app",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _up(url + "/jobs/x"), timeout=30)
    return process, url


def _up(url: str) -> bool:
    try:
        return httpx.get(url).status_code == 200
    except httpx.HTTPError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running emulator (default: start one)")
    parser.add_argument("--connections", default="1,50,200")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument(
        "--scale-out",
        metavar="DATABASE_URL",
        help="instead: status throughput on 1 and 2 API nodes sharing this PostgreSQL database",
    )
    parser.add_argument("--nodes", type=int, default=2, help="with --scale-out")
    args = parser.parse_args()
    if args.scale_out:
        with tempfile.TemporaryDirectory() as tmp_name:
            scale_out(args.scale_out, args.nodes, args.duration, Path(tmp_name))
        return
    counts = [int(n) for n in args.connections.split(",")]
    drive = run_wrk if shutil.which("wrk") else run_asyncio
    print(
        f"load generator: {'wrk' if drive is run_wrk else 'asyncio client (wrk not found)'}; "
        f"{os.cpu_count()} cores; {args.duration:g} s per cell"
    )
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        server = None
        url = args.url
        if url is None:
            server = EmulatorServer(tmp / "emulator", workers=1).start()
            url = server.url
        floor, floor_url = floor_server(tmp)
        try:
            headers = {"Authorization": f"Bearer {token(url)}"}
            job_id = completed_jobs(url, headers, 12)[0]
            # As qiskit-ibm-runtime asks: status polls and job lists without params.
            status = f"{url}/api/v1/jobs/{job_id}?exclude_params=true"
            page = f"{url}/api/v1/jobs?limit=10&exclude_params=true"
            rows = {
                "bare Starlette (floor)": ([f"{floor_url}/jobs/{job_id}"], {}),
                "GET /_emulator/health": ([f"{url}/_emulator/health"], {}),
                "job status": ([status], headers),
                "backend status": ([f"{url}/api/v1/backends/fake_manila/status"], headers),
                "job list (limit 10)": ([page], headers),
                "mixed: 4 polls, 1 list": ([status] * 4 + [page], headers),
            }
            print(f"{'request':26}" + "".join(f"{n:>5} conn: req/s  p50   p99  " for n in counts))
            for name, (urls, hdrs) in rows.items():
                drive(urls, 10, 1.0, hdrs)  # warm-up, not reported
                cells = []
                for n in counts:
                    rate, p50, p99 = drive(urls, n, args.duration, hdrs)
                    cells.append(f"{rate:14.0f} {p50:5.1f} {p99:5.1f}  ")
                print(f"{name:26}" + "".join(cells), flush=True)
            print("(latencies in ms)")
            # The issue's own scenario: Python clients, each waiting for its answer before
            # the next request (wrk keeps every connection busy instead).
            # The same clients against the bare endpoint say how much of it is the clients'
            # own limit (one Python process, sharing the machine's cores with the server).
            print("200 Python clients (httpx, one request at a time each):")
            for name, urls, hdrs in (
                ("emulator, 4 polls : 1 list", [status] * 4 + [page], headers),
                ("bare Starlette (floor)", [f"{floor_url}/jobs/{job_id}"], {}),
            ):
                rate, p50, p99 = run_asyncio(urls, 200, args.duration, hdrs)
                print(f"  {name:28} {rate:6.0f} req/s, p50 {p50:7.1f} ms, p99 {p99:7.1f} ms")
        finally:
            floor.terminate()
            floor.wait(10)
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
