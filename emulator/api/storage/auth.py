"""AWS Signature Version 4 checks for the object store, with botocore computing the signature.

A request is rebuilt the way its client signed it - method, path, query, only the headers its
SignedHeaders names, its own timestamp and credential scope - and botocore's S3 signers derive
the canonical request, the string to sign and the signature from that. This module parses the
signing fields, checks times, looks the access key up and compares in constant time.

Header-signed requests (`Authorization: AWS4-HMAC-SHA256 ...`) and presigned URLs
(`X-Amz-Algorithm=...&X-Amz-Signature=...`) are both accepted. Streaming uploads
(`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`) are authenticated by their seed signature, the one in
the Authorization header; the per-chunk signatures are not recomputed (botocore has no
chunk signer). The seed signature already binds the key, the time and every signed header,
so it settles who is writing where.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import unquote

from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

from emulator.api.storage.credentials import AccessKey
from emulator.api.storage.errors import S3Error, access_denied

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW_S = 15 * 60  # S3's tolerance for a header-signed request's clock
MAX_EXPIRES_S = 7 * 24 * 3600  # S3's longest presigned-URL lifetime
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_TIMESTAMP = re.compile(r"\d{8}T\d{6}Z")
_TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
_QUERY_FIELDS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
)


@dataclass(frozen=True)
class WireRequest:
    """A request as it came over the wire: nothing decoded that the signature covers."""

    method: str
    raw_path: str  # percent-encoded, exactly as sent
    query: str  # the raw query string
    headers: Sequence[tuple[str, str]]  # lower-case names, in the order received

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key == name), None)

    def query_pairs(self) -> list[tuple[str, str]]:
        """The query decoded as SigV4 clients encode it: `%XX` escapes, and `+` is a plus."""
        pairs = []
        for item in self.query.split("&"):
            if item:
                name, _, value = item.partition("=")
                pairs.append((unquote(name), unquote(value)))
        return pairs


@dataclass(frozen=True)
class Signed:
    """A request whose signature checked out."""

    key: AccessKey
    content_sha256: str | None  # the x-amz-content-sha256 header, when the client sent one


def is_hex_sha256(value: str) -> bool:
    return _HEX_SHA256.fullmatch(value) is not None


class _AsSigned:
    """Signs exactly the headers the client listed (botocore would pick its own set)."""

    signed_names: frozenset[str]

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        chosen = HTTPHeaders()
        for name, value in request.headers.items():
            if name.lower() in self.signed_names:
                chosen[name.lower()] = value
        return chosen


def _sign_at(signer: SigV4Auth, request: AWSRequest, timestamp: str) -> tuple[str, str, str]:
    """(signature, canonical request, string to sign) of `request` as signed at `timestamp`.

    botocore's `add_auth` would stamp the current time; a verifier needs the client's.
    """
    request.context["timestamp"] = timestamp
    canonical = signer.canonical_request(request)
    string_to_sign = signer.string_to_sign(request, canonical)
    return signer.signature(string_to_sign, request), canonical, string_to_sign


class _HeaderSigner(_AsSigned, S3SigV4Auth):
    def __init__(
        self, credentials: Credentials, region: str, signed: frozenset[str], payload: str
    ) -> None:
        super().__init__(credentials, "s3", region)
        self.signed_names = signed
        self._payload = payload

    def payload(self, request: AWSRequest) -> str:
        # The canonical request carries the hash the client declared; the body is checked
        # against it separately, once it has been read.
        return self._payload


class _QuerySigner(_AsSigned, S3SigV4QueryAuth):
    def __init__(self, credentials: Credentials, region: str, signed: frozenset[str]) -> None:
        super().__init__(credentials, "s3", region)
        self.signed_names = signed


@dataclass(frozen=True)
class _Scope:
    access_key: str
    date: str
    region: str


class SigV4Verifier:
    """Authenticates requests against a fixed set of access keys."""

    def __init__(
        self, keys: Mapping[str, AccessKey], clock: Callable[[], float] = time.time
    ) -> None:
        self.keys = dict(keys)
        self.clock = clock

    def authenticate(self, request: WireRequest) -> Signed:
        """The key that signed `request`, or an S3Error saying why it is refused."""
        authorization = request.header("authorization")
        names = {name for name, _ in request.query_pairs()}
        presigned = "X-Amz-Signature" in names or "X-Amz-Credential" in names
        if authorization is not None and presigned:
            raise S3Error(
                400,
                "InvalidArgument",
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
                "Signature query string parameter or the Authorization header should be "
                "specified",
                ArgumentName="Authorization",
            )
        content_sha256 = request.header("x-amz-content-sha256")
        if content_sha256 is not None:
            _check_content_sha256(content_sha256)
        if authorization is not None:
            key = self._header_signed(request, authorization, content_sha256)
        elif presigned:
            key = self._presigned(request)
        else:
            # No anonymous access: there are no bucket policies that could grant it.
            raise access_denied("Access Denied: the request is not signed (AWS Signature V4).")
        return Signed(key, content_sha256)

    # -- the two ways of signing ----------------------------------------------------------------

    def _header_signed(
        self, request: WireRequest, authorization: str, content_sha256: str | None
    ) -> AccessKey:
        algorithm, _, rest = authorization.strip().partition(" ")
        if algorithm != ALGORITHM:
            raise S3Error(
                400,
                "InvalidRequest",
                "The authorization mechanism you have provided is not supported. "
                f"Please use {ALGORITHM}.",
            )
        fields: dict[str, str] = {}
        for part in rest.split(","):
            name, eq, value = part.strip().partition("=")
            if eq:
                fields[name] = value.strip()
        missing = [f for f in ("Credential", "SignedHeaders", "Signature") if not fields.get(f)]
        if missing:
            raise _header_malformed(f"the Authorization header lacks {missing[0]}=")
        if content_sha256 is None:
            raise S3Error(
                400,
                "InvalidRequest",
                "Missing required header for this request: x-amz-content-sha256",
            )
        timestamp = self._header_timestamp(request)
        scope = _credential_scope(fields["Credential"], timestamp, _header_malformed)
        signed = _signed_headers(fields["SignedHeaders"], _header_malformed)
        key = self._key(scope.access_key)
        skew = abs(self.clock() - (_epoch(timestamp) or 0.0))
        if skew > MAX_SKEW_S:
            raise S3Error(
                403,
                "RequestTimeTooSkewed",
                "The difference between the request time and the current time is too large.",
                RequestTime=timestamp,
                ServerTime=_format(self.clock()),
                MaxAllowedSkewMilliseconds=str(MAX_SKEW_S * 1000),
            )
        signer = _HeaderSigner(_credentials(key), scope.region, signed, content_sha256)
        self._compare(signer, request, timestamp, fields["Signature"], key, drop=None)
        return key

    def _presigned(self, request: WireRequest) -> AccessKey:
        params = dict(request.query_pairs())
        missing = [f for f in _QUERY_FIELDS if not params.get(f)]
        if missing:
            raise _query_malformed(
                "Query-string authentication version 4 requires the "
                + ", ".join(_QUERY_FIELDS)
                + f" parameters; {missing[0]} is missing."
            )
        if params["X-Amz-Algorithm"] != ALGORITHM:
            raise _query_malformed(f"X-Amz-Algorithm only supports {ALGORITHM!r}.")
        timestamp = params["X-Amz-Date"]
        if _epoch(timestamp) is None:
            raise _query_malformed("X-Amz-Date must be in the ISO8601 Long Format yyyyMMddTHHmmssZ")
        expires_raw = params["X-Amz-Expires"]
        if not expires_raw.isdigit() or not 1 <= int(expires_raw) <= MAX_EXPIRES_S:
            raise _query_malformed(
                f"X-Amz-Expires must be a number of seconds from 1 to {MAX_EXPIRES_S} (a week)."
            )
        scope = _credential_scope(params["X-Amz-Credential"], timestamp, _query_malformed)
        signed = _signed_headers(params["X-Amz-SignedHeaders"], _query_malformed)
        key = self._key(scope.access_key)
        now, signed_at = self.clock(), _epoch(timestamp) or 0.0
        if now > signed_at + int(expires_raw):
            raise access_denied(
                "Request has expired",
                **{"X-Amz-Expires": expires_raw},
                Expires=_format(signed_at + int(expires_raw)),
                ServerTime=_format(now),
            )
        if signed_at > now + MAX_SKEW_S:
            raise access_denied("Request is not valid yet", ServerTime=_format(now))
        signer = _QuerySigner(_credentials(key), scope.region, signed)
        signature = params["X-Amz-Signature"]
        self._compare(signer, request, timestamp, signature, key, drop="X-Amz-Signature")
        return key

    # -- pieces ---------------------------------------------------------------------------------

    def _key(self, access_key: str) -> AccessKey:
        key = self.keys.get(access_key)
        if key is None:
            raise S3Error(
                403,
                "InvalidAccessKeyId",
                "The AWS Access Key Id you provided does not exist in our records.",
                AWSAccessKeyId=access_key,
            )
        return key

    def _header_timestamp(self, request: WireRequest) -> str:
        amz_date = request.header("x-amz-date")
        if amz_date is not None:
            if _epoch(amz_date.strip()) is None:
                raise access_denied("X-Amz-Date must be in the ISO8601 Long Format")
            return amz_date.strip()
        date = request.header("date")
        try:
            parsed = parsedate_to_datetime(date) if date else None
        except (TypeError, ValueError):
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            raise access_denied("AWS authentication requires a valid Date or x-amz-date header")
        return parsed.astimezone(dt.UTC).strftime(_TIMESTAMP_FORMAT)

    def _compare(
        self,
        signer: _HeaderSigner | _QuerySigner,
        request: WireRequest,
        timestamp: str,
        provided: str,
        key: AccessKey,
        drop: str | None,
    ) -> None:
        """Accept when botocore's signature of the rebuilt request equals the one provided."""
        rebuilt = _as_signed(request, signer.signed_names, drop)
        expected, canonical, string_to_sign = _sign_at(signer, rebuilt, timestamp)
        if hmac.compare_digest(expected.encode(), provided.encode("utf-8", "replace")):
            return
        raise S3Error(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method.",
            AWSAccessKeyId=key.access_key,
            StringToSign=string_to_sign,
            SignatureProvided=provided,
            CanonicalRequest=canonical,
        )


def _as_signed(request: WireRequest, signed: frozenset[str], drop: str | None) -> AWSRequest:
    """The request as its client signed it, for botocore to sign again.

    Path and query are the bytes that were sent, not a decoded and re-encoded form: SigV4
    clients (botocore, the Rust SDK in qrmi) send exactly what they signed, and taking it as
    is leaves no gap between what the signature covers and what the store then decodes.
    `drop` is the query parameter carrying the signature itself.
    """
    query = "&".join(
        item for item in request.query.split("&") if item and unquote(item.split("=")[0]) != drop
    )
    url = "http://" + (request.header("host") or "localhost") + request.raw_path
    rebuilt = AWSRequest(method=request.method, url=url + ("?" + query if query else ""))
    # Only the signed headers: an unsigned x-amz-content-sha256 must not change what botocore
    # puts into a presigned URL's canonical request. HTTPHeaders appends, so a repeated
    # header stays repeated (and is joined with commas, as SigV4 says).
    for name, value in request.headers:
        if name in signed:
            rebuilt.headers[name] = value
    return rebuilt


def _credential_scope(
    credential: str, timestamp: str, malformed: Callable[[str], S3Error]
) -> _Scope:
    parts = credential.split("/")
    if len(parts) != 5 or not all(parts):
        raise malformed(
            f"the credential must be ACCESS_KEY/yyyyMMdd/region/s3/aws4_request, not {credential!r}"
        )
    access_key, date, region, service, terminal = parts
    if date != timestamp[:8]:
        raise malformed(
            f"invalid credential date {date!r}: it is not the date of the request time "
            f"{timestamp!r}"
        )
    if service != "s3":
        raise malformed(f"the credential names the service {service!r}; expecting 's3'")
    if terminal != "aws4_request":
        raise malformed(f"the credential ends in {terminal!r}; expecting 'aws4_request'")
    return _Scope(access_key, date, region)


def _signed_headers(raw: str, malformed: Callable[[str], S3Error]) -> frozenset[str]:
    names = frozenset(name.strip().lower() for name in raw.split(";") if name.strip())
    if "host" not in names:
        raise malformed("SignedHeaders must include host")
    return names


def _check_content_sha256(value: str) -> None:
    if value in (UNSIGNED_PAYLOAD,) or value.startswith("STREAMING-") or is_hex_sha256(value):
        return
    raise S3Error(
        400,
        "InvalidArgument",
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-…, or a valid (lower-case "
        "hex) sha256 value.",
        ArgumentName="x-amz-content-sha256",
    )


def _credentials(key: AccessKey) -> Credentials:
    return Credentials(key.access_key, key.secret)


def _epoch(timestamp: str) -> float | None:
    """Seconds since the epoch of a `yyyyMMddTHHmmssZ` time, or None when it is not one."""
    if _TIMESTAMP.fullmatch(timestamp) is None:
        return None
    try:
        parsed = dt.datetime.strptime(timestamp, _TIMESTAMP_FORMAT)
    except ValueError:  # the right shape, but no such day or hour
        return None
    return parsed.replace(tzinfo=dt.UTC).timestamp()


def _format(epoch: float) -> str:
    return time.strftime(_TIMESTAMP_FORMAT, time.gmtime(epoch))


def _header_malformed(detail: str) -> S3Error:
    return S3Error(
        400, "AuthorizationHeaderMalformed", f"The authorization header is malformed; {detail}."
    )


def _query_malformed(detail: str) -> S3Error:
    return S3Error(400, "AuthorizationQueryParametersError", detail)
