"""Verify Alibaba Cloud RPC request signatures as the official Python SDK (alibabacloud-tea-openapi 0.4.6) sends them.

Two schemes, detected from the request (/work/shared/api-surface.md §5, raw requests in §8):

* V3 `ACS3-HMAC-SHA256`, the SDK's default: `Authorization: ACS3-HMAC-SHA256 Credential=<AK>,SignedHeaders=<;list>,
  Signature=<hex>` over a canonical request of method, path, sorted query, the signed headers and the body hash.
* Legacy v2 `HMAC-SHA1` (`Config(signature_algorithm="v2")`): the signature and its bookkeeping are query
  parameters, and the string to sign is `POST&%2F&` + percentEncode(sorted `k=v&...`).

Both canonical forms re-encode the *decoded* parameter values with RFC 3986 rules (space → `%20`), while the SDK's
URL encodes a space as `+`: the query is decoded with form rules first, never signed as received.

Replay inside the skew window is not detected: there is no nonce cache, because API processes share no memory.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, quote

from agora.compat.errors import ProtocolError

V3_ALGORITHM = "ACS3-HMAC-SHA256"
V2_METHOD = "HMAC-SHA1"
V2_VERSION = "1.0"
SUPPORTED = f"{V3_ALGORITHM} (Authorization header) or SignatureMethod={V2_METHOD} with SignatureVersion={V2_VERSION}"
# The V3 canonical request must cover what decides the operation and the time, or they could be swapped.
V3_REQUIRED_SIGNED = ("host", "x-acs-action", "x-acs-version", "x-acs-date")
V2_BOOKKEEPING = frozenset(
    {
        "Signature",
        "SignatureMethod",
        "SignatureVersion",
        "SignatureNonce",
        "AccessKeyId",
        "Timestamp",
        "Format",
        "Action",
        "Version",
    }
)
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
_FORM = "application/x-www-form-urlencoded"


class SignatureError(ProtocolError):
    """A refused request; `code` and `message` are what Alibaba's error body carries as `Code` and `Message`."""

    default_status = 400


@dataclass(frozen=True)
class Verified:
    access_key_id: str
    action: str
    version: str
    params: dict[str, str]


def verify(
    *,
    method: str,
    path: str,
    query_string: str,
    headers: Mapping[str, str],
    body: bytes,
    secret_for: Callable[[str], str | None],
    now: datetime,
    max_skew: timedelta = timedelta(minutes=15),
) -> Verified:
    """Return who signed the request and what it asks for, or raise `SignatureError`.

    `path` and `query_string` are the raw forms from the request line; `headers` may use any case.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    query = _parse_pairs(query_string)
    authorization = lowered.get("authorization", "").strip()
    if authorization:
        algorithm = authorization.partition(" ")[0]
        if algorithm != V3_ALGORITHM:
            raise _unsupported(f"Authorization algorithm '{algorithm}'")
        return _verify_v3(method, path, query, lowered, body, authorization, secret_for, now, max_skew)
    if "Signature" in query:
        return _verify_v2(method, query, lowered, body, secret_for, now, max_skew)
    raise _incomplete(f"The request carries no signature; sign it with {SUPPORTED}.")


def _verify_v3(
    method: str,
    path: str,
    query: dict[str, str],
    headers: dict[str, str],
    body: bytes,
    authorization: str,
    secret_for: Callable[[str], str | None],
    now: datetime,
    max_skew: timedelta,
) -> Verified:
    fields = _parse_authorization(authorization)
    _check_time("x-acs-date", headers.get("x-acs-date"), now, max_skew)
    signed_headers = fields["SignedHeaders"].split(";")
    unsigned = [name for name in V3_REQUIRED_SIGNED if name not in signed_headers]
    if unsigned:
        raise _incomplete(f"SignedHeaders must include {', '.join(unsigned)}.")
    absent = [name for name in signed_headers if name not in headers]
    if absent:
        raise _incomplete(f"Signed header(s) {', '.join(absent)} not present in the request.")
    declared_hash = headers.get("x-acs-content-sha256", "").strip()
    if not _HEX_SHA256.fullmatch(declared_hash):
        raise _incomplete("The x-acs-content-sha256 header (lower-case hex SHA-256 of the body) is required.")

    access_key_id = fields["Credential"]
    secret = _secret(secret_for, access_key_id)
    if not hmac.compare_digest(declared_hash.encode(), hashlib.sha256(body).hexdigest().encode()):
        raise SignatureError(
            "SignatureDoesNotMatch",
            "The payload hash in x-acs-content-sha256 differs from the SHA-256 of the request body.",
        )

    canonical_query = "&".join(f"{key}={_encode(query[key])}" for key in sorted(query))
    # The Python SDK leaves query *names* unencoded (tea-openapi get_canonical_query_string); RPC parameter names
    # are unreserved characters only, so this is also what the documented algorithm produces.
    canonical_headers = "".join(f"{name}:{headers[name].strip()}\n" for name in signed_headers)
    canonical_request = "\n".join(
        (method.upper(), path or "/", canonical_query, canonical_headers, fields["SignedHeaders"], declared_hash)
    )
    string_to_sign = f"{V3_ALGORITHM}\n{hashlib.sha256(canonical_request.encode()).hexdigest()}"
    expected = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()
    _check_signature(expected, fields["Signature"].lower())
    return Verified(
        access_key_id=access_key_id,
        action=headers["x-acs-action"].strip(),
        version=headers["x-acs-version"].strip(),
        params=_operation_params(query),
    )


def _verify_v2(
    method: str,
    query: dict[str, str],
    headers: dict[str, str],
    body: bytes,
    secret_for: Callable[[str], str | None],
    now: datetime,
    max_skew: timedelta,
) -> Verified:
    signature_method = query.get("SignatureMethod", "")
    if signature_method != V2_METHOD:
        raise _unsupported(f"SignatureMethod '{signature_method}'")
    signature_version = query.get("SignatureVersion", "")
    if signature_version != V2_VERSION:
        raise _unsupported(f"SignatureVersion '{signature_version}'")
    access_key_id = query.get("AccessKeyId", "")
    if not access_key_id:
        raise _incomplete("The AccessKeyId parameter is required with a v2 signature.")
    _check_time("Timestamp", query.get("Timestamp"), now, max_skew)
    for name in ("Action", "Version"):
        if not query.get(name):
            raise SignatureError(
                "MissingParameter",
                f'The input parameter "{name}" that is mandatory for processing this request is not supplied.',
            )
    secret = _secret(secret_for, access_key_id)

    signed = {key: value for key, value in query.items() if key != "Signature"}
    # The SDK signs form-body parameters together with the query (tea-openapi do_rpcrequest merges them).
    if body and headers.get("content-type", "").split(";")[0].strip().lower() == _FORM:
        signed.update(_parse_pairs(body.decode("utf-8", errors="replace")))
    canonical = "&".join(f"{_encode(key)}={_encode(signed[key])}" for key in sorted(signed))
    string_to_sign = f"{method.upper()}&%2F&{_encode(canonical)}"
    digest = hmac.new(f"{secret}&".encode(), string_to_sign.encode(), hashlib.sha1).digest()
    _check_signature(base64.b64encode(digest).decode(), query["Signature"])
    return Verified(
        access_key_id=access_key_id, action=query["Action"], version=query["Version"], params=_operation_params(query)
    )


def _parse_pairs(encoded: str) -> dict[str, str]:
    """Decode with form rules (`+` is a space), as the SDK's URL was built; a repeated name cannot have been signed."""
    pairs: dict[str, str] = {}
    for key, value in parse_qsl(encoded, keep_blank_values=True):
        if key in pairs:
            raise SignatureError("SignatureDoesNotMatch", f"Parameter '{key}' appears more than once.")
        pairs[key] = value
    return pairs


def _encode(value: str) -> str:
    return quote(value, safe="~", encoding="utf-8")


def _parse_authorization(authorization: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in authorization[len(V3_ALGORITHM) :].split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or key in fields:
            raise _incomplete(f"The Authorization header is malformed near '{part.strip()}'.")
        fields[key] = value.strip()
    missing = [key for key in ("Credential", "SignedHeaders", "Signature") if not fields.get(key)]
    if missing:
        raise _incomplete(f"The Authorization header lacks {', '.join(missing)}.")
    return fields


def _check_time(name: str, value: str | None, now: datetime, max_skew: timedelta) -> None:
    server_time = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if not value:
        raise SignatureError(
            "InvalidTimeStamp.Expired", f"The request has no {name}; the server time is {server_time}."
        )
    value = value.strip()
    try:
        if not _TIMESTAMP.fullmatch(value):
            raise ValueError(value)
        signed_at = datetime.fromisoformat(value)
    except ValueError:
        raise SignatureError(
            "InvalidTimeStamp.Format",
            f"Specified time stamp or date value is not well formatted: {name} '{value}' (expected "
            "YYYY-MM-DDThh:mm:ssZ).",
        ) from None
    if abs(signed_at - now) > max_skew:
        raise SignatureError(
            "InvalidTimeStamp.Expired",
            f"Specified time stamp or date value is expired: {name} {value} is more than "
            f"{int(max_skew.total_seconds() // 60)} minutes away from the server time {server_time}.",
        )


def _secret(secret_for: Callable[[str], str | None], access_key_id: str) -> str:
    secret = secret_for(access_key_id)
    if not secret:
        raise SignatureError("InvalidAccessKeyId.NotFound", "Specified access key is not found.", 404)
    return secret


def _check_signature(expected: str, provided: str) -> None:
    if not hmac.compare_digest(expected.encode(), provided.encode()):
        raise SignatureError("SignatureDoesNotMatch", "Specified signature is not matched with our calculation.")


def _operation_params(query: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in query.items() if key not in V2_BOOKKEEPING}


def _incomplete(message: str) -> SignatureError:
    return SignatureError("IncompleteSignature", message)


def _unsupported(what: str) -> SignatureError:
    return SignatureError("InvalidSignatureMethod", f"{what} is not supported; use {SUPPORTED}.")
