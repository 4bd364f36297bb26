"""The README's recipes for pointing qiskit-ibm-runtime at the emulator, run as written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from qiskit_ibm_runtime import QiskitRuntimeService, SamplerV2

from tests.circuits import bell, isa
from tests.support import EmulatorServer, applied_env, emulator_env

pytestmark = pytest.mark.slow

# What a saved account or explicit arguments cannot carry: the client reads these from the
# environment only (IAM_URL above all: without it an API key would go to IBM's IAM).
ENV_ONLY = ("IAM_URL", "GLOBAL_SEARCH_URL", "GLOBAL_CATALOG_URL")


def counts_from(service: Any) -> dict[str, int]:
    backend = service.backend("fake_manila")
    return SamplerV2(mode=backend).run([isa(backend, bell())]).result()[0].data.meas.get_counts()


def test_saved_account_recipe(server: EmulatorServer, tmp_path: Path) -> None:
    values = emulator_env(server.url)
    account_file = tmp_path / "qiskit-ibm.json"
    QiskitRuntimeService.save_account(
        channel="ibm_quantum_platform",
        token="emulator-api-key",
        url=values["QISKIT_IBM_URL"],
        instance=values["QISKIT_IBM_INSTANCE"],
        filename=str(account_file),
        set_as_default=True,
        overwrite=True,
    )
    with applied_env({k: values[k] for k in ENV_ONLY}):
        service = QiskitRuntimeService(filename=str(account_file))
        assert set(counts_from(service)) <= {"00", "01", "10", "11"}


def test_explicit_url_resolver_recipe(server: EmulatorServer) -> None:
    values = emulator_env(server.url)
    with applied_env({k: values[k] for k in ENV_ONLY}):
        service = QiskitRuntimeService(
            channel="ibm_quantum_platform",
            token="emulator-api-key",
            instance=values["QISKIT_IBM_INSTANCE"],
            url=server.url,
            url_resolver=lambda url, instance, private_endpoint=False, channel=None: (
                f"{url}/api/v1"
            ),
        )
        assert set(counts_from(service)) <= {"00", "01", "10", "11"}
