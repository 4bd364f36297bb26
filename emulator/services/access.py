"""Identity: IAM-style tokens issued for API keys, and which instances a caller may use.

Tokens are real JWTs signed with a secret kept in the data dir, so they survive restarts and
a token not issued here is refused with 401. The client itself never checks the signature;
it only needs integer `iat`/`exp`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from emulator.config import Instance, Settings
from emulator.domain.errors import InstanceNotAccessible, NotAuthenticated

ISSUER = "https://iam.emulator.local/identity"


class UnknownApiKey(Exception):
    """IAM's 400 `BXNIM0415E`: the API key is not configured."""


@dataclass(frozen=True)
class Identity:
    """Who is calling: an API key, known by its fingerprint only."""

    key_id: str
    instances: tuple[Instance, ...]


def key_fingerprint(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


VERIFIED_TOKENS = 10_000


class AccessPolicy:
    """API keys → instances, token issuing and checking."""

    def __init__(
        self, settings: Settings, secret: bytes, clock: Callable[[], float] = time.time
    ) -> None:
        self._secret = secret
        self._clock = clock  # one clock for issuing and expiry, so tests can move it
        self._verified: dict[str, tuple[str, float]] = {}  # token -> (key id, expiry)
        self._ttl = settings.token_ttl
        self.instances = settings.instance_list
        self.default_instance = self.instances[0]
        by_name = {i.name: i for i in self.instances} | {i.crn: i for i in self.instances}
        # key fingerprint -> instances it may use; empty mapping = every key, every instance
        self._keys: dict[str, tuple[Instance, ...]] = {}
        for entry in settings.api_keys:
            key, _, scope = entry.partition("=")
            if scope:
                names = [n.strip() for n in scope.split("|") if n.strip()]
                unknown = [n for n in names if n not in by_name]
                if unknown:
                    raise ValueError(f"api_keys: unknown instance(s) {unknown} for a key")
                allowed = tuple(by_name[n] for n in names)
            else:
                allowed = self.instances
            self._keys[key_fingerprint(key.strip())] = allowed

    @property
    def open(self) -> bool:
        """True when any API key is accepted."""
        return not self._keys

    def issue_token(self, api_key: str) -> dict[str, Any]:
        """IAM's `/identity/token` answer for an API key."""
        if not api_key:
            raise UnknownApiKey("Provided API key could not be found.")
        key_id = key_fingerprint(api_key)
        if not self.open and key_id not in self._keys:
            raise UnknownApiKey("Provided API key could not be found.")
        now = int(self._clock())
        claims = {
            "iss": ISSUER,
            "sub": f"emulator-{key_id}",
            "iam_id": f"iam-emulator-{key_id}",
            "key": key_id,
            "iat": now,
            "exp": now + self._ttl,
            "grant_type": "urn:ibm:params:oauth:grant-type:apikey",
        }
        token = jwt.encode(claims, self._secret, algorithm="HS256")
        return {
            "access_token": token,
            "refresh_token": "not_supported",
            "token_type": "Bearer",
            "expires_in": self._ttl,
            "expiration": now + self._ttl,
            "scope": "ibm openid",
        }

    def identify(self, authorization: str | None) -> Identity:
        """Check an `Authorization` header. Raises NotAuthenticated."""
        if not authorization:
            raise NotAuthenticated("Missing Authorization header with a bearer token.")
        scheme, _, credential = authorization.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() == "apikey" and credential:
            # The client falls back to this when IAM fails; honour it for known keys.
            key_id = key_fingerprint(credential)
        elif scheme.lower() == "bearer" and credential:
            key_id = self._verify(credential)
        else:
            raise NotAuthenticated("Authorization must be 'Bearer <IAM access token>'.")
        if self.open:
            return Identity(key_id=key_id, instances=self.instances)
        if key_id not in self._keys:
            raise NotAuthenticated("Invalid credentials.")
        return Identity(key_id=key_id, instances=self._keys[key_id])

    def _verify(self, credential: str) -> str:
        """The key id of a valid bearer token. A token is checked once: clients send the same
        one with every poll, and its signature check costs more than the poll's read."""
        known = self._verified.get(credential)
        if known is not None:
            key_id, expires = known
            if self._clock() < expires:
                return key_id
            self._verified.pop(credential, None)
            raise NotAuthenticated("The bearer token has expired.")
        try:
            claims = jwt.decode(
                credential,
                self._secret,
                algorithms=["HS256"],
                issuer=ISSUER,
                # Expiry is checked below against our clock; PyJWT's would read time.time().
                options={
                    "require": ["exp", "iat", "key"],
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError:
            raise NotAuthenticated("Invalid bearer token.") from None
        expires = claims["exp"]
        if not isinstance(expires, int | float):
            raise NotAuthenticated("Invalid bearer token.")
        if expires <= self._clock():
            raise NotAuthenticated("The bearer token has expired.")
        key_id = str(claims["key"])
        if len(self._verified) >= VERIFIED_TOKENS:
            self._verified.clear()  # bounded: a flood of distinct tokens costs re-checks only
        self._verified[credential] = (key_id, float(expires))
        return key_id

    def resolve_instance(self, identity: Identity, service_crn: str | None) -> Instance:
        """The instance a request acts on: its `Service-CRN`, else the default one."""
        if not service_crn:
            if self.default_instance in identity.instances:
                return self.default_instance
            return identity.instances[0]
        for instance in identity.instances:
            if instance.crn == service_crn.strip():
                return instance
        raise InstanceNotAccessible(f"You do not have access to the instance {service_crn}.")
