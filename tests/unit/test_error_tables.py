"""One error-rendering helper for every API: a table looked up by the exception's MRO."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.exceptions import HTTPException

from emulator.api.admin import errors as admin
from emulator.api.boundary import lookup, renderer
from emulator.api.direct_access import errors as direct_access
from emulator.api.runtime import errors as runtime
from emulator.domain import errors as e
from emulator.domain.jobs import JobState


def all_domain_errors() -> list[type[e.EmulatorError]]:
    found: list[type[e.EmulatorError]] = []
    frontier: list[type[e.EmulatorError]] = [e.EmulatorError]
    while frontier:
        cls = frontier.pop()
        found.append(cls)
        frontier.extend(cls.__subclasses__())
    return found


def instance(cls: type[Exception]) -> Exception:
    """An instance of any domain error, whatever its constructor wants."""
    shapes = (("message",), ("field", "message"), ("message", 3), ("id", JobState.QUEUED, "m"))
    for args in (*shapes, ("id", JobState.QUEUED)):
        try:
            return cls(*args)
        except (TypeError, AttributeError):
            continue
    raise AssertionError(f"cannot build {cls}")  # a new constructor: teach this helper


def test_the_most_specific_class_wins_whatever_the_order() -> None:
    table = {e.InvalidRequest: "general", e.TooManyTags: "specific"}
    backwards = dict(reversed(list(table.items())))
    error = e.TooManyTags("tags", "too many")
    assert lookup(table, error) == lookup(backwards, error) == "specific"
    assert lookup(table, e.MalformedBody("body", "bad")) == "general"  # by inheritance
    assert lookup(table, KeyError("x")) is None


@pytest.mark.parametrize(
    ("table", "render"),
    [
        (runtime.STATUS_AND_CODE, runtime.render),
        (direct_access.STATUS_AND_CODE, direct_access.render),
        (admin.STATUS, admin.render),
    ],
    ids=["runtime", "direct_access", "admin"],
)
def test_every_mapped_domain_error_renders_its_own_status(table: Any, render: Any) -> None:
    for cls in all_domain_errors():
        mapped = lookup(table, instance(cls))
        response = render(None, instance(cls))
        if mapped is None:
            assert response.status_code == 500, cls
        else:
            assert response.status_code == mapped[0], cls
        json.loads(bytes(response.body))  # always the envelope, as JSON


def test_http_errors_keep_their_status_and_anything_else_is_500() -> None:
    render = renderer({}, lambda status, code, message, exc: HTTPException(status, message))
    assert render(None, HTTPException(405)).status_code == 405  # type: ignore[attr-defined]
    assert render(None, HTTPException(404)).detail == "Not found."  # type: ignore[attr-defined]
    assert render(None, ValueError("boom")).status_code == 500  # type: ignore[attr-defined]
