"""The container files refer only to things that exist: a CLI command, a route, settings."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import yaml

from emulator.api.admin.routes import routes as admin_routes
from emulator.cli import build_parser
from emulator.config import env_name, setting_names

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "docker" / "Dockerfile").read_text()
COMPOSE = (ROOT / "docker" / "compose.yaml").read_text()
SETTING_VARIABLES = {env_name(name) for name in setting_names()}


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the final stage, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = [line.strip() for line in joined.splitlines()]
    parsed = [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]
    final_from = max(i for i, p in enumerate(parsed) if p[0] == "FROM")
    return [(p[0], p[1] if len(p) > 1 else "") for p in parsed[final_from:]]


def subcommands() -> set[str]:
    parser = build_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(actions[0].choices)


def test_cmd_is_a_real_cli_command() -> None:
    (cmd,) = [args for name, args in instructions(DOCKERFILE) if name == "CMD"]
    argv = json.loads(cmd)
    assert argv[:3] == ["python", "-m", "emulator"] and argv[3] in subcommands()


def test_healthcheck_polls_a_real_route() -> None:
    (check,) = [args for name, args in instructions(DOCKERFILE) if name == "HEALTHCHECK"]
    path = re.search(r"(/_emulator/[a-z_]+)", check)
    assert path is not None
    assert "/" + path.group(1).split("/")[-1] in {r.path for r in admin_routes}  # type: ignore[attr-defined]


def test_environment_names_settings_and_the_port_is_exposed() -> None:
    steps = instructions(DOCKERFILE)
    env = dict(re.findall(r"(EMULATOR_[A-Z_]+)=(\S+)", " ".join(a for n, a in steps if n == "ENV")))
    assert set(env) <= SETTING_VARIABLES
    assert env["EMULATOR_HOST"] == "0.0.0.0"  # inside the container only
    (expose,) = [a for n, a in steps if n == "EXPOSE"]
    assert expose == env["EMULATOR_PORT"]
    (volume,) = [a for n, a in steps if n == "VOLUME"]
    assert env["EMULATOR_DATA_DIR"] in json.loads(volume)
    (user,) = [a for n, a in steps if n == "USER"]
    assert user not in ("root", "0")


def test_compose_uses_only_known_settings_and_publishes_on_loopback() -> None:
    assert set(re.findall(r"(EMULATOR_[A-Z_]+):", COMPOSE)) <= SETTING_VARIABLES
    assert '"127.0.0.1:8000:8000"' in COMPOSE


def test_the_scale_out_compose_file_runs_real_roles_behind_the_load_balancer() -> None:
    text = (ROOT / "docker" / "compose.scale.yaml").read_text()
    compose = yaml.safe_load(text)
    assert set(re.findall(r"(EMULATOR_[A-Z_]+):", text)) <= SETTING_VARIABLES
    services = compose["services"]
    worker = services["worker"]["command"]
    assert worker[:3] == ["python", "-m", "emulator"]
    assert worker[3] in subcommands()
    for api in ("api-1", "api-2"):
        assert services[api]["environment"]["EMULATOR_WORKERS"] == "0"
        assert services[api]["environment"]["EMULATOR_DATABASE_URL"].startswith("postgresql+")
    assert services["nginx"]["ports"] == ["127.0.0.1:8000:8000"]
    nginx = (ROOT / "docker" / "nginx.scale.conf").read_text()
    assert "server api-1:8000;" in nginx and "server api-2:8000;" in nginx
    assert "proxy_set_header Host $http_host;" in nginx  # the control plane checks Host
