"""Typed, bounded query parameters: one spec per parameter, read by the routes and documented
by the OpenAPI builder, so what is parsed and what is published cannot differ.

Rules every API shares: an empty value (`?limit=`) is the same as no value; a parameter given
twice is refused (400 naming it) unless it is a list; numbers outside their range either fall
back to the default (where IBM documents that, e.g. `limit`) or are refused; text is bounded in
length and must be valid Unicode.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from dateutil import parser as dateparser
from starlette.datastructures import QueryParams
from starlette.requests import Request

from emulator.api.jsonio import check_text
from emulator.domain.errors import InvalidRequest
from emulator.domain.jobs import naive_utc

Kind = Literal["integer", "boolean", "string", "date-time"]
INT_LIMIT = 2**31 - 1
"""Largest integer a query parameter takes (offsets, limits): far beyond any real store."""
_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


@dataclass(frozen=True)
class Param:
    """One query parameter: its type, bounds and default, and how out-of-range values end."""

    name: str
    kind: Kind = "string"
    description: str = ""
    default: Any = None
    minimum: int | None = None
    maximum: int | None = None
    # "default": an unusable value silently means the default (IBM's documented `limit`).
    invalid: Literal["error", "default"] = "error"
    choices: tuple[str, ...] = ()
    case_insensitive: bool = False
    max_length: int = 256
    repeated: bool = False
    required: bool = False
    min_length: int = 0
    aliases: tuple[str, ...] = field(default=())

    def schema(self) -> dict[str, Any]:
        """This parameter as an OpenAPI 3.1 parameter object."""
        item: dict[str, Any] = {"type": self.kind if self.kind != "date-time" else "string"}
        if self.kind == "date-time":
            item["format"] = "date-time"
        if self.kind == "integer":
            item["minimum"] = self.minimum if self.minimum is not None else -INT_LIMIT
            item["maximum"] = self.maximum if self.maximum is not None else INT_LIMIT
        if self.kind == "string":
            item["maxLength"] = self.max_length
            if self.min_length:
                item["minLength"] = self.min_length
        if self.choices:
            item["enum"] = list(self.choices)
        if self.default is not None:
            item["default"] = self.default
        schema: dict[str, Any] = {"type": "array", "items": item} if self.repeated else item
        out: dict[str, Any] = {
            "name": self.name,
            "in": "query",
            "required": self.required,
            "schema": schema,
        }
        if self.repeated:
            out["style"], out["explode"] = "form", True
        if self.description:
            out["description"] = self.description
        return out


CACHED_QUERY_BYTES = 256
"""Query strings up to this size have their parse remembered (`query_of`): clients poll with
the same few (`exclude_params=true`), and parsing one costs more than the rest of a poll."""


def query_of(request: Request, specs: tuple[Param, ...]) -> dict[str, Any]:
    """`parse_query` of the request's query string, remembered for short strings (a bounded
    cache; a refused string is parsed again each time, so its 400 is unchanged)."""
    raw: bytes = request.scope.get("query_string", b"")
    if len(raw) > CACHED_QUERY_BYTES:
        return parse_query(request.query_params, specs)
    return dict(_parsed(specs, raw))


@lru_cache(maxsize=4096)
def _parsed(specs: tuple[Param, ...], raw: bytes) -> dict[str, Any]:
    # Cached values are shared: they are immutable (numbers, text, tuples, datetimes) and
    # every caller gets its own dict.
    return parse_query(QueryParams(raw), specs)


def parse_query(query: QueryParams | Mapping[str, str], specs: Sequence[Param]) -> dict[str, Any]:
    """Every spec's value (or default), keyed by name. Unknown parameters are ignored (as IBM)."""
    values: dict[str, Any] = {}
    for spec in specs:
        raw = _values(query, spec)
        if spec.repeated:
            items = [_one(spec, r) for r in raw if r != ""]
            values[spec.name] = tuple(i for i in items if i is not None)
            continue
        present = [r for r in raw if r != ""]
        if len(present) > 1:
            raise InvalidRequest(spec.name, "may be given only once")
        if not present:
            if spec.required:
                raise InvalidRequest(spec.name, "is required")
            values[spec.name] = spec.default
            continue
        values[spec.name] = _one(spec, present[0])
    return values


def _values(query: QueryParams | Mapping[str, str], spec: Param) -> list[str]:
    names = (spec.name, *spec.aliases)
    if isinstance(query, QueryParams):
        return [v for n in names for v in query.getlist(n)]
    return [query[n] for n in names if n in query]


def _one(spec: Param, raw: str) -> Any:
    check_text(raw, spec.name)
    if spec.kind != "string" and len(raw) > 64:  # no number or date is longer
        raise InvalidRequest(spec.name, "is too long")
    if spec.kind == "integer":
        return _integer(spec, raw)
    if spec.kind == "boolean":
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise InvalidRequest(spec.name, "must be true or false")
    if spec.kind == "date-time":
        return parse_datetime(raw, spec.name)
    value = raw.upper() if spec.case_insensitive else raw
    if spec.choices and value not in spec.choices:
        raise InvalidRequest(spec.name, f"must be one of {', '.join(spec.choices)}")
    if not spec.min_length <= len(value) <= spec.max_length:
        raise InvalidRequest(
            spec.name, f"must be {spec.min_length} to {spec.max_length} characters"
        )
    return value


def _integer(spec: Param, raw: str) -> int:
    low = spec.minimum if spec.minimum is not None else -INT_LIMIT
    high = spec.maximum if spec.maximum is not None else INT_LIMIT
    text = raw.strip()
    digits = text.lstrip("+-")
    number: int | None = int(text) if digits.isdigit() and len(digits) <= 12 else None
    if number is not None and low <= number <= high:
        return number
    if spec.invalid == "default":
        return int(spec.default)
    if number is None and not (digits.isdigit()):
        raise InvalidRequest(spec.name, "must be a whole number")
    raise InvalidRequest(spec.name, f"must be between {low} and {high}")


def parse_datetime(value: str, field: str) -> datetime:
    """An ISO 8601 date-time as naive UTC; a 400 naming `field` otherwise."""
    try:
        return naive_utc(dateparser.isoparse(value))
    except (ValueError, OverflowError):
        raise InvalidRequest(field, "must be an ISO 8601 date-time") from None
