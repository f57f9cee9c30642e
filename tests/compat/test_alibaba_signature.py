"""Alibaba Cloud RPC signature verification against requests signed and sent by the unmodified Python SDKs
(tea-openapi 0.4.6 with alibabacloud-market20151101 and alibabacloud-computenestsupplier20210521;
api-surface.md §5, §8)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from alibabacloud_computenestsupplier20210521 import models as computenest_models
from alibabacloud_computenestsupplier20210521.client import Client as ComputeNestClient
from alibabacloud_market20151101 import models as market_models
from alibabacloud_market20151101.client import Client as MarketClient
from alibabacloud_tea_openapi.utils_models import Config

from agora.compat.alibaba import signature
from tests.compat.capture import CannedResponse, CapturedRequest, CaptureServer, capture_server

ACCESS_KEY = "LTAI5tAgoraTestKey0001"
SECRET = "AgoraTestSecret+/=0001abcdefghij"
SECRETS = {ACCESS_KEY: SECRET}
SERVICE_INSTANCE = "si-0123456789abcdef"
# json.dumps puts a space after ':' and ','; the SDK's URL turns those into '+', the canonical string into '%20'.
METERING = json.dumps(
    [
        {
            "InstanceId": "1000001",
            "StartTime": "1735732800",
            "EndTime": "1735736400",
            "Entities": [{"Key": "Frequency", "Value": "96", "meteringAssit": "cmapi00060317-Frequency-1"}],
        }
    ]
)
# Characters whose encoding differs between form and RFC 3986 rules, and raw UTF-8.
METERING_ODD = json.dumps(
    [{"InstanceId": "1 000+002", "Note": "a~b*c'd!(e)/&=?#%é 中"}],
    ensure_ascii=False,
)
SCHEMES = ("v3", "v2")


@pytest.fixture(scope="module")
def server() -> Iterator[CaptureServer]:
    with capture_server(CannedResponse(b'{"RequestId": "x", "Success": true}', "application/json")) as running:
        yield running


def _config(server: CaptureServer, scheme: str, secret: str = SECRET) -> Config:
    algorithm = {"v3": None, "v2": "v2"}.get(scheme, scheme)
    return Config(
        access_key_id=ACCESS_KEY,
        access_key_secret=secret,
        endpoint=server.host,
        protocol="http",
        region_id="cn-hangzhou",
        signature_algorithm=algorithm,
    )


def _market_push(server: CaptureServer, scheme: str, metering: str = METERING) -> CapturedRequest:
    response = MarketClient(_config(server, scheme)).push_metering_data(
        market_models.PushMeteringDataRequest(metering=metering)
    )
    assert response.body.success is True
    return server.last()


def _computenest_push(server: CaptureServer, scheme: str, metering: str = METERING) -> CapturedRequest:
    ComputeNestClient(_config(server, scheme)).push_metering_data(
        computenest_models.PushMeteringDataRequest(service_instance_id=SERVICE_INSTANCE, metering=metering)
    )
    return server.last()


@pytest.fixture(scope="module")
def captured(server: CaptureServer) -> dict[tuple[str, str], CapturedRequest]:
    requests = {}
    for scheme in SCHEMES:
        requests["market", scheme] = _market_push(server, scheme)
        requests["market-odd", scheme] = _market_push(server, scheme, METERING_ODD)
        requests["computenest", scheme] = _computenest_push(server, scheme)
    return requests


@pytest.fixture(params=SCHEMES)
def market(request: pytest.FixtureRequest, captured: dict[tuple[str, str], CapturedRequest]) -> CapturedRequest:
    return captured["market", request.param]


def _signed_at(request: CapturedRequest) -> datetime:
    headers = {name.lower(): value for name, value in request.headers.items()}
    stamp = headers.get("x-acs-date") or dict(parse_qsl(request.query))["Timestamp"]
    return datetime.fromisoformat(stamp)


def _verify(
    request: CapturedRequest, *, now: datetime | None = None, secrets: dict[str, str] | None = None
) -> signature.Verified:
    return signature.verify(
        method=request.method,
        path=request.path,
        query_string=request.query,
        headers=request.headers,
        body=request.body,
        secret_for=(SECRETS if secrets is None else secrets).get,
        now=now or _signed_at(request),
    )


def _refused(request: CapturedRequest, **kwargs: Any) -> signature.SignatureError:
    with pytest.raises(signature.SignatureError) as caught:
        _verify(request, **kwargs)
    return caught.value


def _with_headers(request: CapturedRequest, **changes: str | None) -> CapturedRequest:
    changed = {name.lower() for name in changes}
    headers = {name: value for name, value in request.headers.items() if name.lower() not in changed}
    headers.update({name: value for name, value in changes.items() if value is not None})
    return replace(request, headers=headers)


def _with_query(request: CapturedRequest, **changes: str | None) -> CapturedRequest:
    """Re-encode the query with form rules, as the SDK does, after changing some parameters."""
    params = [(key, value) for key, value in parse_qsl(request.query, keep_blank_values=True) if key not in changes]
    params += [(key, value) for key, value in changes.items() if value is not None]
    return replace(request, query=urlencode(params))


def _is_v3(request: CapturedRequest) -> bool:
    return "Authorization" in request.headers


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("metering_kind", ["market", "market-odd"])
def test_market_push_metering_data_verifies(
    captured: dict[tuple[str, str], CapturedRequest], metering_kind: str, scheme: str
) -> None:
    request = captured[metering_kind, scheme]

    verified = _verify(request)

    metering = METERING if metering_kind == "market" else METERING_ODD
    assert verified == signature.Verified(
        access_key_id=ACCESS_KEY, action="PushMeteringData", version="2015-11-01", params={"Metering": metering}
    )


@pytest.mark.parametrize("scheme", SCHEMES)
def test_computenest_push_metering_data_verifies(captured: dict[tuple[str, str], CapturedRequest], scheme: str) -> None:
    verified = _verify(captured["computenest", scheme])

    assert verified == signature.Verified(
        access_key_id=ACCESS_KEY,
        action="PushMeteringData",
        version="2021-05-21",
        params={"Metering": METERING, "ServiceInstanceId": SERVICE_INSTANCE},
    )


def test_what_the_sdk_sends(captured: dict[tuple[str, str], CapturedRequest]) -> None:
    v3, v2 = captured["market", "v3"], captured["market", "v2"]

    assert v3.headers["Authorization"].startswith(
        f"ACS3-HMAC-SHA256 Credential={ACCESS_KEY},SignedHeaders=accept;host;"
    )
    assert v3.headers["x-acs-content-sha256"] == hashlib.sha256(b"").hexdigest()
    assert "%22%3A+%22" in v3.query, "spaces reach the URL as '+'"
    v2_params = dict(parse_qsl(v2.query))
    assert (v2_params["SignatureMethod"], v2_params["SignatureVersion"]) == ("HMAC-SHA1", "1.0")
    assert "Authorization" not in v2.headers
    assert v2.body == v3.body == b""


def test_spaces_encoded_as_percent_20_verify_too(market: CapturedRequest) -> None:
    assert "+" in market.query

    assert _verify(replace(market, query=market.query.replace("+", "%20"))).params["Metering"] == METERING


def test_header_names_are_case_insensitive(captured: dict[tuple[str, str], CapturedRequest]) -> None:
    request = captured["market", "v3"]
    upper = replace(request, headers={name.upper(): value for name, value in request.headers.items()})

    assert _verify(upper, now=_signed_at(request)).access_key_id == ACCESS_KEY


def test_wrong_secret(market: CapturedRequest) -> None:
    error = _refused(market, secrets={ACCESS_KEY: SECRET + "x"})

    assert (error.code, error.status) == ("SignatureDoesNotMatch", 400)
    assert error.message == "Specified signature is not matched with our calculation."


def test_unknown_access_key(market: CapturedRequest) -> None:
    error = _refused(market, secrets={})

    assert (error.code, error.status, error.message) == (
        "InvalidAccessKeyId.NotFound",
        404,
        "Specified access key is not found.",
    )


def test_tampered_query_parameter(market: CapturedRequest) -> None:
    error = _refused(_with_query(market, Metering=METERING.replace('"96"', '"97"')))

    assert error.code == "SignatureDoesNotMatch"


def test_added_query_parameter(captured: dict[tuple[str, str], CapturedRequest]) -> None:
    error = _refused(_with_query(captured["market", "v3"], ServiceInstanceId=SERVICE_INSTANCE))

    assert error.code == "SignatureDoesNotMatch"


def test_repeated_query_parameter(market: CapturedRequest) -> None:
    error = _refused(replace(market, query=market.query + "&Metering=%5B%5D"))

    assert error.code == "SignatureDoesNotMatch"


@pytest.mark.parametrize("minutes", [16, -16])
def test_stale_or_future_timestamp(market: CapturedRequest, minutes: int) -> None:
    signed_at = _signed_at(market)
    _verify(market, now=signed_at + timedelta(minutes=minutes - (1 if minutes > 0 else -1)))

    error = _refused(market, now=signed_at + timedelta(minutes=minutes))

    assert (error.code, error.status) == ("InvalidTimeStamp.Expired", 400)
    server_time = (signed_at + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert signed_at.strftime("%Y-%m-%dT%H:%M:%SZ") in error.message
    assert server_time in error.message


def test_missing_timestamp(market: CapturedRequest) -> None:
    request = _with_headers(market, **{"x-acs-date": None}) if _is_v3(market) else _with_query(market, Timestamp=None)

    error = _refused(request, now=_signed_at(market))

    assert (error.code, error.status) == ("InvalidTimeStamp.Expired", 400)


def test_malformed_timestamp(market: CapturedRequest) -> None:
    bad = "2026-11-23 11:05:40"
    request = _with_headers(market, **{"x-acs-date": bad}) if _is_v3(market) else _with_query(market, Timestamp=bad)

    error = _refused(request, now=_signed_at(market))

    assert error.code == "InvalidTimeStamp.Format"


def test_payload_hash_mismatch(captured: dict[tuple[str, str], CapturedRequest]) -> None:
    request = captured["market", "v3"]

    error = _refused(replace(request, body=b"Metering=%5B%5D"))

    assert (error.code, error.status) == ("SignatureDoesNotMatch", 400)
    assert "payload hash" in error.message


def test_payload_hash_header_is_signed(captured: dict[tuple[str, str], CapturedRequest]) -> None:
    body = b"Metering=%5B%5D"
    request = _with_headers(
        replace(captured["market", "v3"], body=body), **{"x-acs-content-sha256": hashlib.sha256(body).hexdigest()}
    )

    error = _refused(request)

    assert error.message == "Specified signature is not matched with our calculation."


def test_tampered_action_header(captured: dict[tuple[str, str], CapturedRequest]) -> None:
    error = _refused(_with_headers(captured["market", "v3"], **{"x-acs-action": "DescribeLicense"}))

    assert error.code == "SignatureDoesNotMatch"


def test_tampered_v2_action(captured: dict[tuple[str, str], CapturedRequest]) -> None:
    error = _refused(_with_query(captured["market", "v2"], Action="DescribeLicense"))

    assert error.code == "SignatureDoesNotMatch"


def test_v3_must_sign_the_action(captured: dict[tuple[str, str], CapturedRequest]) -> None:
    request = captured["market", "v3"]
    authorization = request.headers["Authorization"].replace("x-acs-action;", "")

    error = _refused(_with_headers(request, Authorization=authorization))

    assert (error.code, error.status) == ("IncompleteSignature", 400)


def test_no_signature(captured: dict[tuple[str, str], CapturedRequest]) -> None:
    request = _with_headers(captured["market", "v3"], Authorization=None)

    error = _refused(request)

    assert (error.code, error.status) == ("IncompleteSignature", 400)


@pytest.mark.parametrize(
    "authorization",
    [
        "ACS3-HMAC-SHA256 garbage",
        "ACS3-HMAC-SHA256 Credential=LTAI5tAgoraTestKey0001,Signature=00",
        "ACS3-HMAC-SHA256 Credential=,SignedHeaders=host,Signature=00",
    ],
)
def test_malformed_v3_authorization(captured: dict[tuple[str, str], CapturedRequest], authorization: str) -> None:
    error = _refused(_with_headers(captured["market", "v3"], Authorization=authorization))

    assert (error.code, error.status) == ("IncompleteSignature", 400)


def test_sm3_signed_by_the_sdk_is_an_unsupported_method(server: CaptureServer) -> None:
    request = _market_push(server, "ACS3-HMAC-SM3")
    assert request.headers["Authorization"].startswith("ACS3-HMAC-SM3 ")

    error = _refused(request)

    assert (error.code, error.status) == ("InvalidSignatureMethod", 400)
    assert "ACS3-HMAC-SHA256" in error.message and "HMAC-SHA1" in error.message


@pytest.mark.parametrize(
    "authorization", ["ACS3-RSA-SHA256 Credential=x,SignedHeaders=host,Signature=00", "Basic eA=="]
)
def test_other_authorization_schemes_are_unsupported(
    captured: dict[tuple[str, str], CapturedRequest], authorization: str
) -> None:
    error = _refused(_with_headers(captured["market", "v3"], Authorization=authorization))

    assert error.code == "InvalidSignatureMethod"


@pytest.mark.parametrize(("name", "value"), [("SignatureMethod", "HMAC-SHA256"), ("SignatureVersion", "2.0")])
def test_v2_other_methods_are_unsupported(
    captured: dict[tuple[str, str], CapturedRequest], name: str, value: str
) -> None:
    error = _refused(_with_query(captured["market", "v2"], **{name: value}))

    assert (error.code, error.status) == ("InvalidSignatureMethod", 400)
