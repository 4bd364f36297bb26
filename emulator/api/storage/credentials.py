"""Object-store access keys: which secret signs for which instance.

Pure functions over settings values (no I/O, no heavy imports), shared by the store and by
`python -m emulator env --qrmi`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

# SigV4 puts the key into `Credential=KEY/date/region/s3/aws4_request`, and the settings list
# is comma-separated, so neither `/`, `,` nor whitespace can be part of one.
_ACCESS_KEY = re.compile(r"[A-Za-z0-9._~+@-]{1,128}")


class NamedInstance(Protocol):
    """What an instance needs to be for key assignment (`emulator.config.Instance` is one)."""

    @property
    def crn(self) -> str: ...

    @property
    def name(self) -> str: ...


@dataclass(frozen=True)
class AccessKey:
    """One access key: its id, its secret and the CRN of the instance it acts for."""

    access_key: str
    secret: str = field(repr=False)  # kept out of logs and tracebacks
    instance: str


def default_access_key(instance: NamedInstance) -> AccessKey:
    """The predictable pair an instance gets when no keys are configured (local use only)."""
    return AccessKey(f"emulator-{instance.name}", f"emulator-secret-{instance.name}", instance.crn)


def parse_s3_credentials(
    entries: Iterable[str], instances: Iterable[NamedInstance]
) -> dict[str, AccessKey]:
    """Access keys by id from `ACCESS_KEY:SECRET=instance` entries (instance: name or CRN).

    No entries: every instance gets its `default_access_key`. Raises ValueError naming the
    entry by its access key (never the secret) when one cannot be used.
    """
    known = list(instances)
    by_name = {i.name: i.crn for i in known}
    crns = {i.crn for i in known}
    entries = [e.strip() for e in entries if e.strip()]
    if not entries:
        return {key.access_key: key for key in map(default_access_key, known)}
    keys: dict[str, AccessKey] = {}
    for entry in entries:
        access_key, colon, rest = entry.partition(":")
        # Secrets may contain '=' (base64 does); instance names and CRNs never do.
        secret, equals, target = rest.rpartition("=")
        label = f"s3_credentials entry for access key {access_key!r}"
        if not colon or not equals:
            raise ValueError(f"{label}: expected ACCESS_KEY:SECRET=instance")
        if _ACCESS_KEY.fullmatch(access_key) is None:
            raise ValueError(
                f"{label}: an access key is 1-128 letters, digits and . _ ~ + @ - characters"
            )
        if not secret or any(c.isspace() for c in secret):
            raise ValueError(f"{label}: the secret must be non-empty, without whitespace")
        crn = by_name.get(target.strip(), target.strip())
        if crn not in crns:
            raise ValueError(f"{label}: no instance {target.strip()!r} (use a name or CRN)")
        if access_key in keys:
            raise ValueError(f"{label}: the access key is listed twice")
        keys[access_key] = AccessKey(access_key, secret, crn)
    return keys


def key_for_instance(keys: Mapping[str, AccessKey], instance_crn: str) -> AccessKey | None:
    """The first configured key acting for `instance_crn`, if any."""
    return next((k for k in keys.values() if k.instance == instance_crn), None)


def access_key_for_env(
    entries: Iterable[str], instances: Iterable[NamedInstance], instance: str
) -> AccessKey:
    """The key `python -m emulator env --qrmi` exports for `instance` (name or CRN): the first
    configured one, else its default pair. ValueError when there is none to export."""
    known = list(instances)
    match = next((i for i in known if instance in (i.crn, i.name)), None)
    if match is None:
        names = ", ".join(i.name for i in known)
        raise ValueError(
            f"instance {instance!r} is not one of the known instances ({names}); set "
            "EMULATOR_INSTANCES as the server has them"
        )
    key = key_for_instance(parse_s3_credentials(entries, known), match.crn)
    if key is None:
        raise ValueError(f"s3_credentials has no access key for instance {match.name!r}")
    return key
