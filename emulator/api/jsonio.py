"""Strict JSON for request bodies, and text that is safe to echo back in any envelope.

Python's `json` accepts what no IBM client sends and what later breaks a read or a write:
`NaN`/`Infinity` (and `1e400`, which parses as infinity), integers too long for `int()` or for
a 64-bit column, nesting deep enough to exhaust the recursion limit, and lone surrogates
(`"\\ud800"`), which cannot be encoded as UTF-8 on the way out. Each is refused here with the
path of the offending value, so a route never sees such a value and nothing of it is stored.
"""

from __future__ import annotations

import json
import math
from typing import Any

from emulator.domain.errors import InvalidRequest, MalformedBody

MAX_DEPTH = 100
"""Deepest nesting of a body (real Runtime bodies nest about 12 levels)."""
MAX_INT_DIGITS = 19
"""Longest integer literal: anything longer cannot be a 64-bit value (seeds, seconds)."""
INT_BOUND = 2**63
"""Integers must fit a signed 64-bit column (IBM's int64 fields): |value| < 2**63."""


class _Refused(ValueError):
    """Raised from inside the parser's hooks; carries the client-facing reason."""


def _constant(name: str) -> Any:
    raise _Refused(f"{name} is not valid JSON (use a finite number or null)")


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _Refused(f"an integer of {len(text)} digits is out of range")
    value = int(text)
    if not -INT_BOUND < value < INT_BOUND:
        raise _Refused(f"the integer {text} is out of range")
    return value


def _real(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"the number {text[:40]} is out of range (not finite)")
    return value


def parse_json(raw: bytes | str, *, field: str = "body", max_depth: int = MAX_DEPTH) -> Any:
    """Parse a request body strictly; MalformedBody (400) naming `field` or the value's path."""
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            reason = f"not UTF-8 text ({exc.reason} at byte {exc.start})"
            raise MalformedBody(field, reason) from None
    else:
        text = raw
    if not text.strip():
        raise MalformedBody(field, "a JSON body is required")
    try:
        value = json.loads(text, parse_constant=_constant, parse_int=_integer, parse_float=_real)
    except _Refused as exc:
        raise MalformedBody(_where_refused(text, field) or field, str(exc)) from None
    except RecursionError:
        raise MalformedBody(field, f"nested deeper than {max_depth} levels") from None
    except ValueError as exc:  # JSONDecodeError and the int-conversion limit
        raise MalformedBody(field, f"not valid JSON ({_short(str(exc))})") from None
    check_tree(value, field, max_depth)
    return value


class _Marked:
    """Stands in for a refused number while the body is parsed again to find its path."""


def _where_refused(text: str, root: str) -> str | None:
    """The path of the first refused number: the error path only, so the common path pays
    nothing for naming it."""
    marked = _Marked()
    try:
        value = json.loads(
            text,
            parse_constant=lambda _: marked,
            parse_int=lambda t: marked if len(t.lstrip("-")) > MAX_INT_DIGITS else int(t),
            parse_float=lambda t: marked if not math.isfinite(float(t)) else float(t),
        )
    except (ValueError, RecursionError):
        return None
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, where = stack.pop()
        if item is marked or (isinstance(item, int) and not -INT_BOUND < item < INT_BOUND):
            return where or root
        if isinstance(item, dict):
            stack.extend((v, f"{where}.{k}" if where else str(k)) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, f"{where or root}[{i}]") for i, v in enumerate(item))
    return None


def check_tree(value: Any, root: str = "body", max_depth: int = MAX_DEPTH) -> None:
    """Refuse nesting beyond `max_depth` and strings (keys included) that UTF-8 cannot carry.

    Paths name members as the APIs' own field errors do: `tags[0]`, `params.options.x`.
    """
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, str):
            check_text(item, where or root)
        elif isinstance(item, dict | list):
            if depth >= max_depth:
                place = where or root
                place = place if len(place) <= 80 else place[:80] + "…"
                raise MalformedBody(place, f"nested deeper than {max_depth} levels")
            if isinstance(item, dict):
                for key, child in item.items():
                    check_text(key, f"{where or root} (a key)")
                    stack.append((child, f"{where}.{key}" if where else key, depth + 1))
            else:
                base = where or root
                stack.extend((child, f"{base}[{i}]", depth + 1) for i, child in enumerate(item))


def check_text(value: str, field: str) -> None:
    """A string that can be stored and echoed: no lone surrogates, no NUL."""
    if value.isascii():
        if "\x00" in value:
            raise InvalidRequest(_printable(field), "must not contain NUL characters")
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(
            _printable(field), "contains a lone surrogate (not valid Unicode text)"
        ) from None


def safe_text(text: str) -> str:
    """`text` with anything UTF-8 cannot encode escaped, for messages that echo client input."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _printable(field: str) -> str:
    return safe_text(field)


def _short(text: str) -> str:
    return text if len(text) <= 200 else text[:197] + "..."
