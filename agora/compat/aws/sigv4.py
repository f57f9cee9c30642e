"""Verify AWS Signature Version 4 (`AWS4-HMAC-SHA256`, Authorization header form) on an incoming request.

The canonical request, string to sign and signature are recomputed by botocore's own `SigV4Auth`, the code that
signed the request in boto3, so the verifier cannot drift from the client. What botocore does not do for a server
is done here: parsing the Authorization header, checking the credential scope and the clock skew, choosing the
headers to sign from the client's `SignedHeaders` list, and refusing a payload hash header that does not match the
body. Wire format and refusal names: /work/shared/api-surface.md §0 ("Signing", "Errors, json protocols") and §8.

Presigned URLs (`X-Amz-Algorithm` in the query) and session tokens are not supported: the marketplace APIs are called
with an access key pair and a signed Authorization header.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

from botocore.auth import SigV4Auth  # type: ignore[import-untyped, unused-ignore]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped, unused-ignore]
from botocore.compat import HTTPHeaders  # type: ignore[import-untyped, unused-ignore]
from botocore.credentials import Credentials  # type: ignore[import-untyped, unused-ignore]

from agora.compat.errors import ProtocolError

ALGORITHM = "AWS4-HMAC-SHA256"
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")


class SignatureError(ProtocolError):
    """A refused request; `code` is the json-protocol `__type` the SDK turns into its exception class."""

    default_status = 403


@dataclass(frozen=True)
class Verified:
    access_key_id: str
    region: str
    service: str
    signed_at: datetime


@dataclass(frozen=True)
class _Authorization:
    access_key_id: str
    scope_date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


class _SignedHeadersOnly(SigV4Auth):
    """botocore's signer, but signing exactly the headers on the request.

    The verifier only puts the client's `SignedHeaders` on the request. botocore's own selection would drop
    names on its client-side blacklist (`user-agent`, `expect`, ...) that another SDK may legitimately sign,
    and would invent a `host` from the URL; either would make a correct signature fail to verify.
    """

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        return request.headers


def verify(
    *,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    secret_for: Callable[[str], str | None],
    now: datetime,
    service: str = "aws-marketplace",
    max_skew: timedelta = timedelta(minutes=15),
) -> Verified:
    """Return who signed the request, or raise `SignatureError`.

    `path` and `query` are the raw, still percent-encoded forms from the request line (ASGI `raw_path` and
    `query_string`): SigV4 signs the encoded path and query as the client sent them. `headers` may use any case.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    header = lowered.get("authorization")
    if not header:
        raise SignatureError("MissingAuthenticationTokenException", "Missing Authentication Token")
    auth = _parse_authorization(header)

    amz_date = lowered.get("x-amz-date", "").strip()
    if not amz_date:
        raise SignatureError(
            "IncompleteSignatureException",
            "Authorization header requires existence of an 'X-Amz-Date' header.",
            400,
        )
    signed_at = _parse_amz_date(amz_date)
    if auth.service != service:
        raise SignatureError(
            "InvalidSignatureException", f"Credential should be scoped to correct service: '{service}'."
        )
    if auth.scope_date != amz_date[:8]:
        raise SignatureError(
            "InvalidSignatureException",
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{auth.scope_date}' != '{amz_date[:8]}', from '{amz_date}'.",
        )
    _check_skew(signed_at, amz_date, now, max_skew)

    secret = secret_for(auth.access_key_id)
    if not secret:
        raise SignatureError("UnrecognizedClientException", "The security token included in the request is invalid.")

    request_headers = {}
    for name in auth.signed_headers:
        if name not in lowered:
            raise SignatureError(
                "IncompleteSignatureException", f"Signed header '{name}' is not present in the request.", 400
            )
        request_headers[name] = lowered[name]
    content_hash = request_headers.get("x-amz-content-sha256")
    if content_hash is not None:
        _check_payload_hash(content_hash, body)

    # http:// keeps botocore hashing the payload (over https it may honour an unsigned-payload context flag); the
    # host in this URL is never signed, because `host` comes from the client's headers. The query goes in decoded,
    # so botocore re-encodes it by the SigV4 rules, as AWS does: a client that escaped more or fewer characters in
    # its URL than in its canonical request still verifies.
    params = [
        (unquote(key), unquote(value)) for key, _, value in (pair.partition("=") for pair in query.split("&") if pair)
    ]
    request = AWSRequest(
        method=method.upper(), url="http://verifier" + (path or "/"), headers=request_headers, data=body, params=params
    )
    request.context["timestamp"] = amz_date
    signer = _SignedHeadersOnly(Credentials(auth.access_key_id, secret), auth.service, auth.region)
    canonical_request = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical_request), request)
    if not hmac.compare_digest(expected.encode(), auth.signature.encode()):
        raise SignatureError(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method.",
        )
    return Verified(access_key_id=auth.access_key_id, region=auth.region, service=auth.service, signed_at=signed_at)


def _incomplete(message: str) -> SignatureError:
    return SignatureError("IncompleteSignatureException", message, 400)


def _parse_authorization(header: str) -> _Authorization:
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise _incomplete(f"Unsupported AWS 'algorithm': '{algorithm}'; only '{ALGORITHM}' is accepted.")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or key in fields:
            raise _incomplete(f"Authorization header is malformed near '{part.strip()}'.")
        fields[key] = value.strip()
    missing = [key for key in ("Credential", "SignedHeaders", "Signature") if not fields.get(key)]
    if missing:
        raise _incomplete(" ".join(f"Authorization header requires '{key}' parameter." for key in missing))

    scope = fields["Credential"].split("/")
    if len(scope) != 5 or not all(scope):
        raise _incomplete(
            f"Credential must have the form <access key>/<date>/<region>/<service>/aws4_request, "
            f"not '{fields['Credential']}'."
        )
    access_key_id, scope_date, region, scope_service, terminator = scope
    if not (len(scope_date) == 8 and scope_date.isascii() and scope_date.isdigit()):
        raise _incomplete(f"Credential scope date must be YYYYMMDD, not '{scope_date}'.")
    if terminator != "aws4_request":
        raise _incomplete(f"Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'.")

    signed_headers = tuple(fields["SignedHeaders"].split(";"))
    if not all(_HEADER_NAME.fullmatch(name) for name in signed_headers):
        raise _incomplete(
            f"SignedHeaders must be lower-case header names separated by ';': '{fields['SignedHeaders']}'."
        )
    if "host" not in signed_headers:
        raise _incomplete("'Host' must be a 'SignedHeader' in the AWS Authorization.")
    if "x-amz-date" not in signed_headers:
        raise _incomplete("'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.")
    if not _SIGNATURE.fullmatch(fields["Signature"]):
        raise _incomplete("Signature must be 64 lower-case hexadecimal characters.")
    return _Authorization(
        access_key_id=access_key_id,
        scope_date=scope_date,
        region=region,
        service=scope_service,
        signed_headers=signed_headers,
        signature=fields["Signature"],
    )


def _parse_amz_date(value: str) -> datetime:
    bad = _incomplete(f"X-Amz-Date must be in the ISO-8601 basic format YYYYMMDD'T'HHMMSS'Z', not '{value}'.")
    if not _AMZ_DATE.fullmatch(value):
        raise bad
    try:
        return datetime(
            int(value[0:4]),
            int(value[4:6]),
            int(value[6:8]),
            int(value[9:11]),
            int(value[11:13]),
            int(value[13:15]),
            tzinfo=UTC,
        )
    except ValueError:
        raise bad from None


def _check_skew(signed_at: datetime, amz_date: str, now: datetime, max_skew: timedelta) -> None:
    window = f"{int(max_skew.total_seconds() // 60)} min."
    if signed_at < now - max_skew:
        raise SignatureError(
            "InvalidSignatureException",
            f"Signature expired: {amz_date} is now earlier than {_amz(now - max_skew)} ({_amz(now)} - {window})",
        )
    if signed_at > now + max_skew:
        raise SignatureError(
            "InvalidSignatureException",
            f"Signature not yet current: {amz_date} is still later than {_amz(now + max_skew)} "
            f"({_amz(now)} + {window})",
        )


def _amz(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _check_payload_hash(declared: str, body: bytes) -> None:
    """A signed `X-Amz-Content-SHA256` replaces the body in the canonical request, so it must be the body's hash
    (which also refuses `UNSIGNED-PAYLOAD` and the streaming forms)."""
    if not hmac.compare_digest(declared.encode(), hashlib.sha256(body).hexdigest().encode()):
        raise SignatureError(
            "InvalidSignatureException",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        )
