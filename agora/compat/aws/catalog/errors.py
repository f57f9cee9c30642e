"""The Catalog API's errors, with the HTTP status each has in the service model."""

from __future__ import annotations

from agora.compat.errors import ProtocolError
from agora.errors import AgoraError, Conflict, Forbidden, NotFound

STATUS = {
    "AccessDeniedException": 403,
    "InternalServiceException": 500,
    "ResourceInUseException": 423,
    "ResourceNotFoundException": 404,
    "ResourceNotSupportedException": 415,
    "ServiceQuotaExceededException": 402,
    "ThrottlingException": 429,
    "ValidationException": 422,
}


class CatalogError(ProtocolError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message, STATUS.get(code, 400))


def validation(message: str) -> CatalogError:
    return CatalogError("ValidationException", message)


def not_found(message: str) -> CatalogError:
    return CatalogError("ResourceNotFoundException", message)


def from_agora(error: AgoraError) -> CatalogError:
    """A refusal of Agora's own services, as the Catalog API says it. Every rule refusal (Invalid, an invalid
    transition) is a ValidationException whose message keeps the rule's id."""
    if isinstance(error, NotFound):
        return not_found(error.detail)
    if isinstance(error, Forbidden):
        return CatalogError("AccessDeniedException", error.detail)
    if isinstance(error, Conflict):
        return validation(error.detail)
    return validation(error.detail)
