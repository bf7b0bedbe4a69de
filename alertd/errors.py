"""The one shape of a refused request: an HTTP status, a code, a message and the field at fault.
Domain modules raise subclasses; the API's error middleware answers them, so no handler translates."""

from __future__ import annotations


class RequestError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field, self.headers = status, code, message, field, headers
