"""Settings: flags over `EMULATOR_*` variables over defaults, and clear errors."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from emulator.config import (
    DEFAULT_INSTANCE_CRN,
    Settings,
    SettingsError,
    env_name,
    setting_fields,
)


def test_defaults() -> None:
    s = Settings.from_sources({}, {})
    assert (s.host, s.port, s.data_dir) == ("127.0.0.1", 8000, Path(".emulator"))
    assert s.default_instance.crn == DEFAULT_INSTANCE_CRN
    assert s.effective_database_url.startswith("sqlite:///") and s.effective_database_url.endswith(
        "emulator.db"
    )


def test_idle_connections_are_closed_by_clients_before_the_server() -> None:
    """A server closing an idle keep-alive connection races the client's next request on it
    (the client sees "Server disconnected"): clients' pools must give up on idle connections
    first. httpx's default expiry is 5 s; requests/urllib3 keeps them until the server closes."""
    httpx_expiry = httpx.Limits().keepalive_expiry or 0.0
    assert Settings.from_sources({}, {}).keep_alive_timeout > 2 * httpx_expiry


def test_flags_win_over_environment() -> None:
    environ = {
        "EMULATOR_PORT": "9000",
        "EMULATOR_WORKERS": "3",
        "EMULATOR_BACKENDS": "ibm_kyiv, x=fez",
    }
    s = Settings.from_sources({"port": 9100, "workers": None}, environ)
    assert s.port == 9100 and s.workers == 3 and s.backends == ("ibm_kyiv", "x=fez")


def test_every_setting_has_one_environment_variable() -> None:
    assert env_name("data_dir") == "EMULATOR_DATA_DIR"
    for name, kind, help_text, _ in setting_fields():
        assert help_text, f"{name} has no help text"
        if kind == "int":
            assert getattr(Settings.from_sources({}, {env_name(name): "7"}), name) == 7


def test_instances_parse_names_and_regions() -> None:
    crn = "crn:v1:bluemix:public:quantum-computing:eu-de:a/x:1234abcd-0000-0000-0000-000000000000::"
    s = Settings.from_sources({"instances": f"alpha={crn}"}, {})
    assert s.default_instance.name == "alpha" and s.default_instance.region == "eu-de"


@pytest.mark.parametrize(
    ("cli", "field"),
    [
        ({"port": 0}, "port"),
        ({"workers": -1}, "workers"),
        ({"port": "eighty"}, "port"),
        ({"instances": "not-a-crn"}, "instance"),
        ({"backends": ""}, "backends"),
        ({"usage_limits": "nobody=10"}, "usage_limits"),
        ({"usage_limits": "-1"}, "usage_limits"),
        ({"usage_limits": "ten"}, "usage_limits"),
        ({"usage_limit_action": "queue"}, "usage_limit_action"),
    ],
)
def test_bad_values_name_the_setting(cli: dict[str, object], field: str) -> None:
    with pytest.raises(SettingsError, match=field):
        Settings.from_sources(cli, {})


def test_usage_limits_apply_to_every_instance_or_one() -> None:
    a = "crn:v1:bluemix:public:quantum-computing:us-east:a/x:aaaaaaaa-0000-0000-0000-000000000000::"
    b = "crn:v1:bluemix:public:quantum-computing:us-east:a/x:bbbbbbbb-0000-0000-0000-000000000000::"
    instances = f"alpha={a},beta={b}"
    assert Settings.from_sources({"instances": instances}, {}).usage_limit_map == {}
    everyone = Settings.from_sources({"instances": instances, "usage_limits": "600"}, {})
    assert everyone.usage_limit_map == {a: 600.0, b: 600.0}
    # A per-instance entry (by name or CRN) wins over the bare one, whatever the order.
    mixed = Settings.from_sources({"instances": instances, "usage_limits": "beta=0.5,600"}, {})
    assert mixed.usage_limit_map == {a: 600.0, b: 0.5}
    by_crn = Settings.from_sources({"instances": instances, "usage_limits": f"{a}=1"}, {})
    assert by_crn.usage_limit_map == {a: 1.0}
    limits = by_crn.instance_limits
    assert limits.active and limits.usage.refuses(a) and not limits.usage.refuses(b)
    hold = Settings.from_sources(
        {"instances": instances, "usage_limits": "1", "usage_limit_action": "hold"}, {}
    ).instance_limits
    # Hold mode never refuses a submission: the workers leave the jobs Queued instead.
    assert not hold.active and not hold.usage.refuses(a) and hold.usage.limit_for(a) == 1.0


def test_any_api_version_is_served_as_the_one_in_force_at_that_date() -> None:
    from emulator.api.runtime.versions import API_VERSIONS, served_version

    latest = API_VERSIONS[-1]["version"]
    assert served_version("2026-04-15") == "2026-04-15"
    assert served_version("2026-04-20") == "2026-04-15"
    assert served_version("2026-03-10") == "2026-02-15"  # not the nearer, later 2026-03-15
    assert served_version("1999-01-01") == API_VERSIONS[0]["version"]
    assert served_version("2031-12-31") == latest
    assert served_version("banana") == latest and served_version(None) == latest
