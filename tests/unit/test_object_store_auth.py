"""What the object store refuses: bad or missing signatures, other instances' buckets, oversized
objects and keys no XML listing could carry. Requests are signed by botocore, as clients do."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import botocore.auth
import httpx
import pytest
from botocore.exceptions import ClientError
from starlette.types import ASGIApp

from emulator.api.storage.credentials import (
    AccessKey,
    access_key_for_env,
    default_access_key,
    parse_s3_credentials,
)
from emulator.api.storage.store import ObjectMeta, ObjectStore
from emulator.cli import qrmi_lines
from emulator.config import Instance, Settings
from tests.s3_signing import (
    CRN_A,
    CRN_B,
    INSTANCES,
    KEY_A,
    KEY_B,
    Served,
    call,
    presign,
    raw_call,
    send,
    send_url,
    sign,
    signed_request,
    storage_app,
)

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
TEAM_A, TEAM_B = Instance(CRN_A, "team-a"), Instance(CRN_B, "team-b")


def key_path(bucket: str, key: str) -> str:
    return f"/{bucket}/" + quote(key, safe="").replace(".", "%2E")


def error(response: httpx.Response) -> ET.Element:
    assert response.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(response.content)
    assert root.tag == "Error" and root.findtext("RequestId")
    return root


def code(response: httpx.Response) -> str:
    return error(response).findtext("Code") or ""


def object_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.obj")]


@pytest.fixture
def app(tmp_path: Path) -> ASGIApp:
    return storage_app(tmp_path)


@pytest.fixture
def signed_in_past(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """botocore signs as if its clock said two hours ago (a URL made earlier, a skewed host)."""
    past = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=2)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: past)
    yield


# --- access keys ------------------------------------------------------------------------------


def test_without_configured_keys_each_instance_has_its_default_pair() -> None:
    keys = parse_s3_credentials((), [TEAM_A, TEAM_B])
    assert keys == {
        "emulator-team-a": AccessKey("emulator-team-a", "emulator-secret-team-a", CRN_A),
        "emulator-team-b": AccessKey("emulator-team-b", "emulator-secret-team-b", CRN_B),
    }
    assert default_access_key(TEAM_B) == keys["emulator-team-b"]


def test_configured_keys_by_name_or_crn_replace_the_defaults() -> None:
    keys = parse_s3_credentials(
        ["AKIAONE:c2VjcmV0==team-a", f" AKIATWO:two:with:colons={CRN_B} ", "AK3:x=team-a"],
        [TEAM_A, TEAM_B],
    )
    assert keys["AKIAONE"] == AccessKey("AKIAONE", "c2VjcmV0=", CRN_A)  # '=' inside a secret
    assert keys["AKIATWO"] == AccessKey("AKIATWO", "two:with:colons", CRN_B)
    assert keys["AK3"].instance == CRN_A
    assert "emulator-team-a" not in keys  # no predictable pair once keys are configured


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("AK1", "expected ACCESS_KEY:SECRET=instance"),
        ("AK1:hunter2", "expected ACCESS_KEY:SECRET=instance"),
        ("AK1:hunter2=team-c", "no instance 'team-c'"),
        ("A/K:hunter2=team-a", "an access key is"),
        (":hunter2=team-a", "an access key is"),
        ("AK1:=team-a", "the secret must be non-empty"),
        ("AK1:hun ter2=team-a", "without whitespace"),
    ],
)
def test_unusable_key_entries_are_named_without_their_secret(entry: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        parse_s3_credentials([entry], [TEAM_A, TEAM_B])
    assert "hunter2" not in str(caught.value)


def test_duplicate_access_key_is_refused() -> None:
    with pytest.raises(ValueError, match="listed twice"):
        parse_s3_credentials(["AK1:one=team-a", "AK1:two=team-b"], [TEAM_A, TEAM_B])


def test_access_key_for_env() -> None:
    both = [TEAM_A, TEAM_B]
    assert access_key_for_env((), both, CRN_B).access_key == "emulator-team-b"
    assert access_key_for_env((), both, "team-a").secret == "emulator-secret-team-a"
    configured = ["AK1:one=team-a", "AK2:two=team-a"]
    assert access_key_for_env(configured, both, CRN_A).access_key == "AK1"  # the first one
    with pytest.raises(ValueError, match="no access key for instance 'team-b'"):
        access_key_for_env(configured, both, CRN_B)
    with pytest.raises(ValueError, match="not one of the known instances"):
        access_key_for_env((), both, "crn:v1:elsewhere")


def qrmi_values(settings: Settings, info: dict[str, Any], instance: str) -> dict[str, str]:
    lines = qrmi_lines("ibm_fez", "http://127.0.0.1:1", "k", instance, "qrmi", 60, settings, info)
    return dict(line.removeprefix("export ibm_fez_").split("=", 1) for line in lines)


def test_env_qrmi_exports_the_exported_instances_key() -> None:
    local = Settings(instances=INSTANCES)
    values = qrmi_values(local, {}, CRN_B)
    assert values["QRMI_IBM_QS_AWS_ACCESS_KEY_ID"] == "emulator-team-b"
    assert values["QRMI_IBM_QS_AWS_SECRET_ACCESS_KEY"] == "emulator-secret-team-b"

    # Local settings know only the default instance; the server's info names the others.
    served = {"instances": [{"name": "team-a", "crn": CRN_A}, {"name": "team-b", "crn": CRN_B}]}
    values = qrmi_values(Settings(), served, CRN_B)
    assert values["QRMI_IBM_QS_AWS_ACCESS_KEY_ID"] == "emulator-team-b"

    configured = Settings(instances=INSTANCES, s3_credentials=("AKB:s3cr=t=team-b",))
    values = qrmi_values(configured, {}, CRN_B)
    assert values["QRMI_IBM_QS_AWS_ACCESS_KEY_ID"] == "AKB"
    assert values["QRMI_IBM_QS_AWS_SECRET_ACCESS_KEY"] == "s3cr=t"
    with pytest.raises(SystemExit, match="no access key for instance 'team-a'"):
        qrmi_values(configured, {}, CRN_A)


# --- signatures -------------------------------------------------------------------------------


def test_signed_requests_work_and_unsigned_ones_are_refused(app: ASGIApp, tmp_path: Path) -> None:
    assert call(app, "PUT", "/bkt/doc.json", content=b"{}").status_code == 200
    assert call(app, "GET", "/bkt/doc.json").content == b"{}"
    for method in ("GET", "PUT", "DELETE"):
        unsigned = call(
            app,
            method,
            "/bkt/doc.json",
            key=None,
            headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"},
        )
        assert unsigned.status_code == 403, method
        assert code(unsigned) == "AccessDenied"
    assert call(app, "GET", "/bkt/doc.json").content == b"{}"  # the unsigned PUT stored nothing
    head = call(app, "HEAD", "/bkt/doc.json", key=None, params={"x-id": "HeadObject"})
    assert head.status_code == 403 and head.content == b""  # HEAD errors: status only


def test_wrong_secret_is_signature_does_not_match(app: ASGIApp, tmp_path: Path) -> None:
    response = call(app, "PUT", "/bkt/k", key=(KEY_A[0], "not-the-secret"), content=b"x")
    assert response.status_code == 403
    document = error(response)
    assert document.findtext("Code") == "SignatureDoesNotMatch"
    assert document.findtext("AWSAccessKeyId") == KEY_A[0]
    assert (document.findtext("StringToSign") or "").startswith("AWS4-HMAC-SHA256\n")
    assert (document.findtext("CanonicalRequest") or "").startswith("PUT\n/bkt/k\n")
    assert object_files(tmp_path) == []


def test_unknown_access_key_is_invalid_access_key_id(app: ASGIApp) -> None:
    response = call(app, "GET", "/", key=("AKIANOBODY", "whatever"))
    assert response.status_code == 403
    assert code(response) == "InvalidAccessKeyId"
    assert error(response).findtext("AWSAccessKeyId") == "AKIANOBODY"


def test_configured_keys_replace_the_default_pairs(tmp_path: Path) -> None:
    app = storage_app(tmp_path, s3_credentials=("AKIAREAL:real-secret=team-a",))
    assert (
        call(app, "PUT", "/bkt/k", key=("AKIAREAL", "real-secret"), content=b"x").status_code == 200
    )
    assert code(call(app, "GET", "/bkt/k", key=KEY_A)) == "InvalidAccessKeyId"


def test_bad_s3_credentials_fail_the_store_at_startup(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no instance 'team-z'"):
        storage_app(tmp_path, s3_credentials=("AK:secret=team-z",))


def test_changed_request_breaks_its_signature(app: ASGIApp) -> None:
    call(app, "PUT", "/bkt/a", content=b"a")
    headers = {"content-type": "application/json"}
    request = signed_request("PUT", "/bkt/b", content=b"b", headers=headers)

    moved = httpx.Request("PUT", "http://s3.test/bkt/c", content=b"b", headers=request.headers)
    assert code(send(app, moved)) == "SignatureDoesNotMatch"
    retyped = httpx.Request("PUT", request.url, content=b"b", headers=request.headers)
    retyped.headers["content-type"] = "text/plain"  # a signed header
    assert code(send(app, retyped)) == "SignatureDoesNotMatch"
    # A header the client did not sign may be added on the way (proxies do).
    request.headers["x-forwarded-for"] = "127.0.0.1"
    assert send(app, request).status_code == 200
    assert call(app, "GET", "/bkt/b").headers["content-type"] == "application/json"


def test_any_region_in_the_credential_scope_is_accepted(app: ASGIApp) -> None:
    assert call(app, "PUT", "/bkt/k", content=b"x", region="eu-de").status_code == 200


def test_header_signed_request_from_a_skewed_clock_is_refused(
    app: ASGIApp, signed_in_past: None
) -> None:
    response = call(app, "GET", "/")
    assert response.status_code == 403
    assert code(response) == "RequestTimeTooSkewed"
    assert error(response).findtext("MaxAllowedSkewMilliseconds") == "900000"


def test_body_must_match_its_declared_sha256(app: ASGIApp, tmp_path: Path) -> None:
    request = signed_request("PUT", "/bkt/k", content=b"what was signed")
    tampered = httpx.Request(
        "PUT", request.url, content=b"something else!", headers=request.headers
    )
    response = send(app, tampered)
    assert response.status_code == 400
    document = error(response)
    assert document.findtext("Code") == "XAmzContentSHA256Mismatch"
    assert (
        document.findtext("S3ComputedContentSHA256")
        == hashlib.sha256(b"something else!").hexdigest()
    )
    assert object_files(tmp_path) == []


@pytest.mark.parametrize("value", ["sha256-please", "A" * 64, ""])
def test_unknown_content_sha256_forms_are_400(app: ASGIApp, value: str) -> None:
    response = call(app, "PUT", "/bkt/k", content=b"x", headers={"x-amz-content-sha256": value})
    assert response.status_code == 400
    assert code(response) == "InvalidArgument"


def test_unsigned_and_streaming_payloads_are_accepted(app: ASGIApp) -> None:
    unsigned = {"x-amz-content-sha256": "UNSIGNED-PAYLOAD"}
    assert call(app, "PUT", "/bkt/u", content=b"free", headers=unsigned).status_code == 200
    assert call(app, "GET", "/bkt/u").content == b"free"
    # STREAMING-AWS4-HMAC-SHA256-PAYLOAD: the seed signature in the header is verified.
    streaming = {
        "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": "5",
    }
    body = b"5;chunk-signature=" + b"0" * 64 + b"\r\nhello\r\n0;chunk-signature=" + b"0" * 64
    body += b"\r\n\r\n"
    assert call(app, "PUT", "/bkt/s", content=body, headers=streaming).status_code == 200
    assert call(app, "GET", "/bkt/s").content == b"hello"
    forged = call(app, "PUT", "/bkt/s", key=(KEY_A[0], "x"), content=body, headers=streaming)
    assert code(forged) == "SignatureDoesNotMatch"


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        ("AWS4-HMAC-SHA256 Credential=emulator-team-a/20990101/us-east-1/s3/aws4_request", 400),
        ("AWS4-HMAC-SHA256 Credential=x, SignedHeaders=host, Signature=00", 400),
        ("AWS emulator-team-a:c2lnbmF0dXJl", 400),  # Signature V2
    ],
)
def test_malformed_authorization_is_400(app: ASGIApp, authorization: str, expected: int) -> None:
    request = signed_request("GET", "/")
    request.headers["authorization"] = authorization
    response = send(app, request)
    assert response.status_code == expected
    assert code(response) in {"AuthorizationHeaderMalformed", "InvalidRequest"}


def test_credential_scope_must_match_the_request_date(app: ASGIApp) -> None:
    request = signed_request("GET", "/")
    request.headers["authorization"] = request.headers["authorization"].replace(
        request.headers["x-amz-date"][:8], "20000101", 1
    )
    assert code(send(app, request)) == "AuthorizationHeaderMalformed"


def test_header_and_query_signature_together_are_refused(app: ASGIApp) -> None:
    url = presign("get_object", "bkt", "k")
    request = signed_request("GET", url.removeprefix("http://s3.test"))
    response = send(app, request)
    assert response.status_code == 400
    assert code(response) == "InvalidArgument"


# --- presigned URLs ---------------------------------------------------------------------------


def test_presigned_put_and_get(app: ASGIApp) -> None:
    put = presign("put_object", "bkt", "in/job 1.json")
    assert send_url(app, "PUT", put, b'{"a": 1}').status_code == 200
    got = send_url(app, "GET", presign("get_object", "bkt", "in/job 1.json"))
    assert got.status_code == 200 and got.content == b'{"a": 1}'
    # The same URL is a capability for this one object and method only.
    assert code(send_url(app, "DELETE", put)) == "SignatureDoesNotMatch"
    other = put.replace("job%201.json", "job%202.json")
    assert code(send_url(app, "PUT", other, b"x")) == "SignatureDoesNotMatch"


def test_expired_presigned_url_is_refused(app: ASGIApp, signed_in_past: None) -> None:
    call_url = presign("get_object", "bkt", "k", expires=3600)  # made 2 h ago, valid for 1 h
    response = send_url(app, "GET", call_url)
    assert response.status_code == 403
    document = error(response)
    assert document.findtext("Code") == "AccessDenied"
    assert document.findtext("Message") == "Request has expired"
    assert document.findtext("X-Amz-Expires") == "3600"


def test_presigned_url_made_earlier_and_still_valid_works(
    app: ASGIApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    call(app, "PUT", "/bkt/k", content=b"x")
    past = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=2)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: past)
    url = presign("get_object", "bkt", "k", expires=3 * 3600)
    monkeypatch.undo()
    assert send_url(app, "GET", url).content == b"x"


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (("X-Amz-Expires=60", "X-Amz-Expires=604801"), "X-Amz-Expires"),
        (("X-Amz-Expires=60", "X-Amz-Expires=0"), "X-Amz-Expires"),
        (("X-Amz-Expires=60", "X-Amz-Expires=soon"), "X-Amz-Expires"),
        (("X-Amz-Date=", "X-Amz-Daet="), "X-Amz-Date"),
        (("X-Amz-Algorithm=AWS4-HMAC-SHA256", "X-Amz-Algorithm=AWS4-HMAC-SHA1"), "X-Amz-Algorithm"),
    ],
)
def test_malformed_presigned_parameters_are_400(
    app: ASGIApp, change: tuple[str, str], fragment: str
) -> None:
    url = presign("get_object", "bkt", "k")
    assert change[0] in url
    response = send_url(app, "GET", url.replace(*change))
    assert response.status_code == 400
    assert code(response) == "AuthorizationQueryParametersError"
    assert fragment in (error(response).findtext("Message") or "")


# --- buckets belong to instances --------------------------------------------------------------


def test_other_instances_cannot_touch_a_bucket(app: ASGIApp, tmp_path: Path) -> None:
    assert call(app, "PUT", "/team-a-data/secret.json", content=b"A's").status_code == 200
    attempts = [
        ("GET", "/team-a-data/secret.json", {}),
        ("HEAD", "/team-a-data/secret.json", {}),
        ("HEAD", "/team-a-data/no-such-key", {}),  # same answer: no hint which keys exist
        ("GET", "/team-a-data/no-such-key", {}),
        ("PUT", "/team-a-data/secret.json", {"content": b"B's"}),
        ("PUT", "/team-a-data/new.json", {"content": b"B's"}),
        ("DELETE", "/team-a-data/secret.json", {}),
        ("GET", "/team-a-data", {"params": {"list-type": "2"}}),
        ("GET", "/team-a-data", {"params": {"location": ""}}),
        ("HEAD", "/team-a-data", {}),
        ("DELETE", "/team-a-data", {}),
    ]
    for method, path, kwargs in attempts:
        response = call(app, method, path, key=KEY_B, **kwargs)
        assert response.status_code == 403, (method, path)
        if method != "HEAD":
            assert code(response) == "AccessDenied"
            assert CRN_A not in response.text and "team-a" not in error(response).findtext(
                "Message", ""
            )
    taken = call(app, "PUT", "/team-a-data", key=KEY_B)
    assert taken.status_code == 409 and code(taken) == "BucketAlreadyExists"

    assert call(app, "GET", "/team-a-data/secret.json").content == b"A's"  # A: all intact
    assert len(object_files(tmp_path)) == 1
    assert call(app, "PUT", "/team-a-data").status_code == 200  # A re-creating: as S3 us-east-1


def test_list_buckets_shows_only_the_callers(app: ASGIApp) -> None:
    call(app, "PUT", "/alpha-bucket")
    call(app, "PUT", "/alpha-two/k", content=b"x")  # created by its first PUT
    call(app, "PUT", "/beta-bucket", key=KEY_B)

    def names(key: tuple[str, str]) -> list[str]:
        root = ET.fromstring(call(app, "GET", "/", key=key).content)
        return [n.text or "" for n in root.iter(f"{NS}Name")]

    assert names(KEY_A) == ["alpha-bucket", "alpha-two"]
    assert names(KEY_B) == ["beta-bucket"]


def test_put_into_a_missing_bucket_creates_it_for_the_writer(app: ASGIApp, tmp_path: Path) -> None:
    assert call(app, "PUT", "/fresh/k", key=KEY_B, content=b"b").status_code == 200
    record = json.loads((tmp_path / "objects" / "fresh" / ".bucket.json").read_text())
    assert record["owner"] == CRN_B
    assert call(app, "GET", "/fresh/k", key=KEY_B).content == b"b"
    assert call(app, "GET", "/fresh/k", key=KEY_A).status_code == 403


def test_ownership_survives_a_restart_and_old_buckets_belong_to_the_default_instance(
    tmp_path: Path,
) -> None:
    first = storage_app(tmp_path)
    call(first, "PUT", "/bees/k", key=KEY_B, content=b"b")
    # A bucket written before ownership existed: a directory without an owner record.
    legacy = ObjectStore(tmp_path / "objects", default_owner="unused")
    legacy.put("legacy", "old.json", b"old", "application/json", owner="unused")
    (tmp_path / "objects" / "legacy" / ".bucket.json").unlink()

    again = storage_app(tmp_path)
    assert call(again, "GET", "/bees/k", key=KEY_B).content == b"b"
    assert call(again, "GET", "/bees/k", key=KEY_A).status_code == 403
    assert call(again, "GET", "/legacy/old.json", key=KEY_A).content == b"old"  # team-a: default
    assert call(again, "GET", "/legacy/old.json", key=KEY_B).status_code == 403


def test_deleted_bucket_can_be_taken_by_another_instance(app: ASGIApp) -> None:
    call(app, "PUT", "/shared-name")
    assert call(app, "DELETE", "/shared-name").status_code == 204
    assert call(app, "PUT", "/shared-name/k", key=KEY_B, content=b"b").status_code == 200
    assert call(app, "GET", "/shared-name/k").status_code == 403
    assert call(app, "HEAD", "/shared-name", key=KEY_B).status_code == 200


def test_presigned_url_of_another_instance_cannot_read(app: ASGIApp) -> None:
    call(app, "PUT", "/team-a-in/input.json", content=b"A's input")
    url = presign("get_object", "team-a-in", "input.json", signer=KEY_B)
    response = send_url(app, "GET", url)
    assert response.status_code == 403 and code(response) == "AccessDenied"
    assert send_url(app, "GET", presign("get_object", "team-a-in", "input.json")).status_code == 200


# --- object size ------------------------------------------------------------------------------


def test_object_size_limit_comes_from_settings(tmp_path: Path) -> None:
    app = storage_app(tmp_path, max_object_mb=1)
    limit = 1024 * 1024
    assert call(app, "PUT", "/big/fits", content=b"x" * limit).status_code == 200
    over = call(app, "PUT", "/big/over", content=b"x" * (limit + 1))
    assert over.status_code == 400
    assert code(over) == "EntityTooLarge"
    assert error(over).findtext("MaxSizeAllowed") == str(limit)
    declared = call(
        app,
        "PUT",
        "/big/chunked",
        content=b"0\r\n\r\n",
        headers={
            "content-encoding": "aws-chunked",
            "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            "x-amz-decoded-content-length": str(limit + 1),
        },
    )
    assert code(declared) == "EntityTooLarge"
    assert call(app, "HEAD", "/big/over").status_code == 404


def test_oversized_content_length_is_refused_before_the_body_arrives(tmp_path: Path) -> None:
    app = storage_app(tmp_path, max_object_mb=1)
    # The body is 4 bytes, then the client is gone: a store that read before checking the
    # declared length would never answer.
    assert (
        raw_call(app, "PUT", "/big/k", [(b"content-length", str(1024 * 1024 + 1).encode())]) == 400
    )
    assert object_files(tmp_path) == []


# --- keys and XML -----------------------------------------------------------------------------

AWKWARD_KEYS = [
    "tab\there",
    "new\nline",
    "carriage\rreturn",
    "crlf\r\nkey",
    "markup <a href=\"x\">&amp;</a> 'q'",
    "cdata ]]> end",
    "ünïcödé ✓ 😀",
    "next\u0085line and\u2028separator",
    " leading and trailing ",
    "plus+percent%20%2F",
    "c1 control \x85 and DEL \x7f",
]


def test_listing_of_awkward_keys_is_well_formed_xml(app: ASGIApp) -> None:
    for key in AWKWARD_KEYS:
        assert call(app, "PUT", key_path("odd", key), content=b"x").status_code == 200, repr(key)
    for params in ({"list-type": "2"}, {}):  # v2 and v1
        listing = ET.fromstring(call(app, "GET", "/odd", params=params).content)
        assert sorted(k.text or "" for k in listing.iter(f"{NS}Key")) == sorted(AWKWARD_KEYS)
    encoded = call(app, "GET", "/odd", params={"list-type": "2", "encoding-type": "url"})
    listing = ET.fromstring(encoded.content)
    assert listing.findtext(f"{NS}EncodingType") == "url"
    keys = [k.text or "" for k in listing.iter(f"{NS}Key")]
    assert all(c.isprintable() and not c.isspace() for k in keys for c in k)
    assert sorted(unquote(k) for k in keys) == sorted(AWKWARD_KEYS)
    grouped = call(app, "GET", "/odd", params={"delimiter": "\r", "prefix": "c"})
    prefixes = [p.text for p in ET.fromstring(grouped.content).iter(f"{NS}Prefix")][1:]
    assert prefixes == ["carriage\r", "crlf\r"]


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("nul\x00byte", "U+0000"),
        ("bell\x07", "U+0007"),
        ("escape \x1b[31m", "U+001B"),
        ("noncharacter \ufffe", "U+FFFE"),
        ("noncharacter \uffff", "U+FFFF"),
    ],
)
def test_keys_xml_cannot_carry_are_refused_at_put(
    app: ASGIApp, tmp_path: Path, key: str, problem: str
) -> None:
    response = call(app, "PUT", key_path("odd", key), content=b"x")
    assert response.status_code == 400
    document = error(response)
    assert document.findtext("Code") == "InvalidArgument"
    assert document.findtext("ArgumentName") == "key"
    assert problem in (document.findtext("Message") or "")
    assert object_files(tmp_path) == []


def test_lone_surrogate_in_a_key_is_refused(app: ASGIApp, tmp_path: Path) -> None:
    # U+D800 encoded as UTF-8 would be ED A0 80: not UTF-8, and not a character XML allows.
    response = call(app, "PUT", "/odd/half%ED%A0%80", content=b"x")
    assert response.status_code == 400
    assert code(response) == "InvalidArgument"
    assert error(response).findtext("ArgumentName") == "key"
    assert object_files(tmp_path) == []


def test_listing_parameters_xml_cannot_carry(app: ASGIApp) -> None:
    call(app, "PUT", "/odd/k", content=b"x")
    refused = call(app, "GET", "/odd", params={"list-type": "2", "prefix": "\x01"})
    assert refused.status_code == 400 and error(refused).findtext("ArgumentName") == "prefix"
    encoded = call(
        app, "GET", "/odd", params={"list-type": "2", "prefix": "\x01", "encoding-type": "url"}
    )
    assert ET.fromstring(encoded.content).findtext(f"{NS}Prefix") == "%01"


def test_old_keys_xml_cannot_carry_are_listed_url_encoded_only(
    app: ASGIApp, tmp_path: Path
) -> None:
    call(app, "PUT", "/odd/fine", content=b"x")
    store = ObjectStore(tmp_path / "objects", default_owner=CRN_A)
    store.put("odd", "old\x01key", b"x", "text/plain", owner=CRN_A)  # stored before the rule
    plain = call(app, "GET", "/odd", params={"list-type": "2"})
    assert plain.status_code == 400 and code(plain) == "InvalidArgument"
    encoded = call(app, "GET", "/odd", params={"list-type": "2", "encoding-type": "url"})
    keys = [k.text for k in ET.fromstring(encoded.content).iter(f"{NS}Key")]
    assert keys == ["fine", "old%01key"]
    missing = call(app, "GET", key_path("odd", "gone\x02"))  # errors echo keys, still XML
    assert missing.status_code == 404
    assert error(missing).findtext("Key") == "gone\ufffd"
    assert call(app, "DELETE", key_path("odd", "old\x01key")).status_code == 204


def test_object_meta_is_unchanged_by_ownership() -> None:
    # The owner lives with the bucket, not in each object's header line.
    meta = ObjectMeta("k", 1, "e", "c", "text/plain", 0.0)
    assert "owner" not in json.loads(meta.to_json())


# --- boto3 and plain HTTP over a real socket --------------------------------------------------

CLIENT_KEYS = [
    "in/with space.json",
    "a+b=c&d",
    "100%/done",
    "ünï/✓ 😀.json",
    "~tilde!*'()",
    "q?x=1#f",
]


@pytest.fixture
def served(app: ASGIApp) -> Iterator[Served]:
    with Served(app) as server:
        yield server


def test_boto3_header_signed_and_presigned_with_awkward_keys(served: Served) -> None:
    s3 = served.s3()
    for key in CLIENT_KEYS:
        s3.put_object(Bucket="keys", Key=key, Body=key.encode())
        assert s3.get_object(Bucket="keys", Key=key)["Body"].read() == key.encode()
        put = s3.generate_presigned_url("put_object", Params={"Bucket": "keys", "Key": key})
        assert httpx.put(put, content=b"again " + key.encode()).status_code == 200, key
        get = s3.generate_presigned_url("get_object", Params={"Bucket": "keys", "Key": key})
        fetched = httpx.get(get)
        assert fetched.status_code == 200, (key, fetched.text)
        assert fetched.content == b"again " + key.encode()
    listed = s3.list_objects_v2(Bucket="keys")  # boto3 asks for encoding-type=url
    assert sorted(o["Key"] for o in listed["Contents"]) == sorted(CLIENT_KEYS)


def test_boto3_of_another_instance_is_refused(served: Served) -> None:
    served.s3().put_object(Bucket="mine", Key="k", Body=b"x")
    other = served.s3(KEY_B)
    with pytest.raises(ClientError) as denied:
        other.get_object(Bucket="mine", Key="k")
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    assert other.list_buckets()["Buckets"] == []
    with pytest.raises(ClientError) as forged:
        served.s3((KEY_A[0], KEY_B[1])).list_buckets()
    assert forged.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def test_sign_helper_matches_boto3(served: Served) -> None:
    # The in-process helper signs as boto3 does: the same request through both works.
    url = f"{served.url}/helper/k"
    headers = {"host": f"127.0.0.1:{served.port}", "content-type": "text/plain"}
    auth = sign("PUT", url, headers, KEY_A, b"hi")
    assert httpx.put(url, content=b"hi", headers={**headers, **auth}).status_code == 200
    assert served.s3().get_object(Bucket="helper", Key="k")["Body"].read() == b"hi"
