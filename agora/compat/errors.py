"""The one exception shape of the SDK front doors: a vendor error code, a message, an HTTP status."""

from __future__ import annotations

from typing import ClassVar


class ProtocolError(Exception):
    default_status: ClassVar[int] = 400

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = self.default_status if status is None else status
