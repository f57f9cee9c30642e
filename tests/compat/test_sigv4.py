"""SigV4 verification against requests signed and sent by an unmodified boto3 (api-surface.md §0, §8)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from agora.compat.aws import sigv4
from tests.compat.capture import CannedResponse, CapturedRequest, CaptureServer, capture_server

ACCESS_KEY = "AKIAAGORATESTKEY0001"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYAGORAKEY01"
SECRETS = {ACCESS_KEY: SECRET}
REGIONS = ("us-east-1", "eu-west-1")
USAGE_TIME = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def server() -> Iterator[CaptureServer]:
    canned = CannedResponse(b"{}", "application/x-amz-json-1.1", headers={"x-amzn-RequestId": "req-1"})
    with capture_server(canned) as running:
        yield running


def _client(server: CaptureServer, service: str, region: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=server.url,
        region_name=region,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET,
    )


def _meter_usage(server: CaptureServer, region: str) -> CapturedRequest:
    _client(server, "meteringmarketplace", region).meter_usage(
        ProductCode="prod-1", Timestamp=USAGE_TIME, UsageDimension="users", UsageQuantity=3
    )
    return server.last()


def _batch_meter_usage(server: CaptureServer, region: str) -> CapturedRequest:
    _client(server, "meteringmarketplace", region).batch_meter_usage(
        ProductCode="prod-1",
        UsageRecords=[
            {"Timestamp": USAGE_TIME, "CustomerIdentifier": "cust-1", "Dimension": "users", "Quantity": 3},
            {"Timestamp": USAGE_TIME, "CustomerIdentifier": "cust 2 é", "Dimension": "gb", "Quantity": 10},
        ],
    )
    return server.last()


def _get_entitlements(server: CaptureServer, region: str) -> CapturedRequest:
    _client(server, "marketplace-entitlement", region).get_entitlements(
        ProductCode="prod-1", Filter={"CUSTOMER_IDENTIFIER": ["cust-1"]}
    )
    return server.last()


def _describe_entity(server: CaptureServer, region: str) -> CapturedRequest:
    """A rest-json GET: the query string (with an encoded space, colon and slash) is part of the signature."""
    _client(server, "marketplace-catalog", region).describe_entity(Catalog="AWS Marketplace", EntityId="prod-a b:c/d~e")
    return server.last()


OPERATIONS = {
    "MeterUsage": _meter_usage,
    "BatchMeterUsage": _batch_meter_usage,
    "GetEntitlements": _get_entitlements,
    "DescribeEntity": _describe_entity,
}


@pytest.fixture(scope="module")
def captured(server: CaptureServer) -> dict[tuple[str, str], CapturedRequest]:
    return {(name, region): send(server, region) for name, send in OPERATIONS.items() for region in REGIONS}


@pytest.fixture
def meter_usage(captured: dict[tuple[str, str], CapturedRequest]) -> CapturedRequest:
    return captured["MeterUsage", "us-east-1"]


def _signed_at(request: CapturedRequest) -> datetime:
    return datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def _amz_date(instant: datetime) -> str:
    return instant.strftime("%Y%m%dT%H%M%SZ")


def _verify(
    request: CapturedRequest,
    *,
    now: datetime | None = None,
    secrets: dict[str, str] | None = None,
    service: str = "aws-marketplace",
) -> sigv4.Verified:
    return sigv4.verify(
        method=request.method,
        path=request.path,
        query=request.query,
        headers=request.headers,
        body=request.body,
        secret_for=(SECRETS if secrets is None else secrets).get,
        now=now or _signed_at(request),
        service=service,
    )


def _refused(request: CapturedRequest, **kwargs: Any) -> sigv4.SignatureError:
    with pytest.raises(sigv4.SignatureError) as caught:
        _verify(request, **kwargs)
    return caught.value


def _with_headers(request: CapturedRequest, **changes: str | None) -> CapturedRequest:
    headers = {name: value for name, value in request.headers.items() if name not in changes}
    headers.update({name: value for name, value in changes.items() if value is not None})
    return replace(request, headers=headers)


MISMATCH = "The request signature we calculated does not match the signature you provided."


@pytest.mark.parametrize("region", REGIONS)
@pytest.mark.parametrize("operation", OPERATIONS)
def test_requests_signed_by_boto3_verify(
    captured: dict[tuple[str, str], CapturedRequest], operation: str, region: str
) -> None:
    request = captured[operation, region]

    verified = _verify(request)

    assert verified == sigv4.Verified(
        access_key_id=ACCESS_KEY, region=region, service="aws-marketplace", signed_at=_signed_at(request)
    )


def test_what_boto3_signs_for_a_json_operation(meter_usage: CapturedRequest) -> None:
    assert meter_usage.path == "/"
    assert meter_usage.headers["X-Amz-Target"] == "AWSMPMeteringService.MeterUsage"
    assert "SignedHeaders=content-type;host;x-amz-date;x-amz-target," in meter_usage.headers["Authorization"]
    assert "X-Amz-Content-SHA256" not in meter_usage.headers


def test_header_names_are_case_insensitive(meter_usage: CapturedRequest) -> None:
    now = _signed_at(meter_usage)
    lower = replace(meter_usage, headers={name.lower(): value for name, value in meter_usage.headers.items()})
    upper = replace(meter_usage, headers={name.upper(): value for name, value in meter_usage.headers.items()})

    assert _verify(lower, now=now).access_key_id == _verify(upper, now=now).access_key_id == ACCESS_KEY


def test_unsigned_headers_may_change(meter_usage: CapturedRequest) -> None:
    request = _with_headers(meter_usage, **{"User-Agent": "something else", "amz-sdk-request": "attempt=2; max=3"})

    assert _verify(request).access_key_id == ACCESS_KEY


def test_wrong_secret_is_a_signature_mismatch(meter_usage: CapturedRequest) -> None:
    error = _refused(meter_usage, secrets={ACCESS_KEY: SECRET + "x"})

    assert (error.code, error.status) == ("InvalidSignatureException", 403)
    assert error.message.startswith(MISMATCH)


def test_unknown_access_key(meter_usage: CapturedRequest) -> None:
    error = _refused(meter_usage, secrets={})

    assert (error.code, error.status) == ("UnrecognizedClientException", 403)
    assert error.message == "The security token included in the request is invalid."


def test_tampered_body(meter_usage: CapturedRequest) -> None:
    body = meter_usage.body.replace(b'"UsageQuantity": 3', b'"UsageQuantity": 4')
    assert len(body) == len(meter_usage.body) and body != meter_usage.body

    error = _refused(replace(meter_usage, body=body))

    assert error.code == "InvalidSignatureException"
    assert error.message.startswith(MISMATCH)


def test_tampered_signed_header(meter_usage: CapturedRequest) -> None:
    request = _with_headers(meter_usage, **{"X-Amz-Target": "AWSMPMeteringService.BatchMeterUsage"})

    error = _refused(request)

    assert error.code == "InvalidSignatureException"
    assert error.message.startswith(MISMATCH)


def test_query_is_compared_decoded(captured: dict[tuple[str, str], CapturedRequest]) -> None:
    request = captured["DescribeEntity", "us-east-1"]
    assert "~" in request.query

    assert _verify(replace(request, query=request.query.replace("~", "%7E"))).access_key_id == ACCESS_KEY


def test_tampered_query(captured: dict[tuple[str, str], CapturedRequest]) -> None:
    request = captured["DescribeEntity", "eu-west-1"]

    error = _refused(replace(request, query=request.query.replace("prod-a", "prod-b")))

    assert error.message.startswith(MISMATCH)


def test_signature_expires_after_the_skew(meter_usage: CapturedRequest) -> None:
    signed_at = _signed_at(meter_usage)
    _verify(meter_usage, now=signed_at + timedelta(minutes=15))

    error = _refused(meter_usage, now=signed_at + timedelta(minutes=16))

    assert (error.code, error.status) == ("InvalidSignatureException", 403)
    limit, now = _amz_date(signed_at + timedelta(minutes=1)), _amz_date(signed_at + timedelta(minutes=16))
    assert error.message == f"Signature expired: {_amz_date(signed_at)} is now earlier than {limit} ({now} - 15 min.)"


def test_signature_from_the_future_is_refused(meter_usage: CapturedRequest) -> None:
    signed_at = _signed_at(meter_usage)
    _verify(meter_usage, now=signed_at - timedelta(minutes=15))

    error = _refused(meter_usage, now=signed_at - timedelta(minutes=16))

    assert error.code == "InvalidSignatureException"
    assert error.message.startswith(f"Signature not yet current: {meter_usage.headers['X-Amz-Date']} is still later")


def test_credential_scoped_to_another_service(server: CaptureServer) -> None:
    _client(server, "kms", "us-east-1").list_keys()
    request = server.last()
    assert "/us-east-1/kms/aws4_request" in request.headers["Authorization"]

    error = _refused(request)

    assert (error.code, error.status) == ("InvalidSignatureException", 403)
    assert error.message == "Credential should be scoped to correct service: 'aws-marketplace'."
    assert _verify(request, service="kms").service == "kms"


def test_scope_date_must_match_x_amz_date(meter_usage: CapturedRequest) -> None:
    next_day = _amz_date(_signed_at(meter_usage) + timedelta(days=1))

    error = _refused(_with_headers(meter_usage, **{"X-Amz-Date": next_day}), now=_signed_at(meter_usage))

    assert error.code == "InvalidSignatureException"
    assert "Date in Credential scope does not match" in error.message


def test_missing_authorization(meter_usage: CapturedRequest) -> None:
    error = _refused(_with_headers(meter_usage, Authorization=None))

    assert (error.code, error.status) == ("MissingAuthenticationTokenException", 403)


def test_missing_x_amz_date(meter_usage: CapturedRequest) -> None:
    error = _refused(_with_headers(meter_usage, **{"X-Amz-Date": None}), now=_signed_at(meter_usage))

    assert (error.code, error.status) == ("IncompleteSignatureException", 400)


@pytest.mark.parametrize(
    "authorization",
    [
        "garbage",
        "Bearer abc.def.ghi",
        "AWS4-HMAC-SHA512 Credential=AKIAAGORATESTKEY0001/20261123/us-east-1/aws-marketplace/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64,
        "AWS4-HMAC-SHA256 garbage",
        "AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Signature=" + "0" * 64,
        "AWS4-HMAC-SHA256 Credential=AKIAAGORATESTKEY0001/20261123/us-east-1/aws-marketplace/aws4_request, "
        "Signature=" + "0" * 64,
        "AWS4-HMAC-SHA256 Credential=AKIAAGORATESTKEY0001/20261123/us-east-1/aws-marketplace/aws4_request, "
        "SignedHeaders=host;x-amz-date",
        "AWS4-HMAC-SHA256 Credential=AKIAAGORATESTKEY0001/20261123/us-east-1/aws-marketplace, "
        "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64,
        "AWS4-HMAC-SHA256 Credential=AKIAAGORATESTKEY0001/20261123/us-east-1/aws-marketplace/aws5_request, "
        "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64,
        "AWS4-HMAC-SHA256 Credential=AKIAAGORATESTKEY0001/2026-11-23/us-east-1/aws-marketplace/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64,
        "AWS4-HMAC-SHA256 Credential=AKIAAGORATESTKEY0001/20261123/us-east-1/aws-marketplace/aws4_request, "
        "SignedHeaders=content-type;x-amz-date, Signature=" + "0" * 64,
        "AWS4-HMAC-SHA256 Credential=AKIAAGORATESTKEY0001/20261123/us-east-1/aws-marketplace/aws4_request, "
        "SignedHeaders=host;x-amz-target, Signature=" + "0" * 64,
        "AWS4-HMAC-SHA256 Credential=AKIAAGORATESTKEY0001/20261123/us-east-1/aws-marketplace/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=not-hex-é",
    ],
)
def test_malformed_authorization(meter_usage: CapturedRequest, authorization: str) -> None:
    error = _refused(_with_headers(meter_usage, Authorization=authorization))

    assert (error.code, error.status) == ("IncompleteSignatureException", 400)


@pytest.mark.parametrize("amz_date", ["2026-11-23T11:06:02Z", "20261123T110602", "20261323T110602Z"])
def test_malformed_x_amz_date(meter_usage: CapturedRequest, amz_date: str) -> None:
    error = _refused(_with_headers(meter_usage, **{"X-Amz-Date": amz_date}), now=_signed_at(meter_usage))

    assert (error.code, error.status) == ("IncompleteSignatureException", 400)


def test_signed_header_missing_from_request(meter_usage: CapturedRequest) -> None:
    error = _refused(_with_headers(meter_usage, **{"X-Amz-Target": None}))

    assert (error.code, error.status) == ("IncompleteSignatureException", 400)


PAYLOAD = b'{"ProductCode": "prod-1"}'


def _sign_with_content_sha256(content_sha256: str) -> CapturedRequest:
    """botocore's own signer, the way S3-style clients send it: the payload hash travels as a signed header."""
    request = AWSRequest(
        method="POST",
        url="http://127.0.0.1:8080/",
        data=PAYLOAD,
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Content-SHA256": content_sha256},
    )
    SigV4Auth(Credentials(ACCESS_KEY, SECRET), "aws-marketplace", "us-east-1").add_auth(request)
    headers = {name: str(value) for name, value in request.headers.items()}
    return CapturedRequest(
        method="POST", path="/", query="", headers={"Host": "127.0.0.1:8080", **headers}, body=PAYLOAD
    )


def test_signed_payload_hash_header_must_match_the_body() -> None:
    good = _sign_with_content_sha256(hashlib.sha256(PAYLOAD).hexdigest())
    assert "x-amz-content-sha256" in good.headers["Authorization"]
    assert _verify(good).access_key_id == ACCESS_KEY

    unsigned = _sign_with_content_sha256("UNSIGNED-PAYLOAD")
    error = _refused(unsigned)

    assert error.code == "InvalidSignatureException"
    assert "x-amz-content-sha256" in error.message
