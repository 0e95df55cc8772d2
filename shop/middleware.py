"""Give every request an id, echo it as ``X-Request-ID``, and hand it to the outbox."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from shop.request_context import bind_request_id, reset_request_id

_SAFE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _SAFE.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        token = bind_request_id(request_id)
        try:
            response = self.get_response(request)
        finally:
            reset_request_id(token)
        response["X-Request-ID"] = request_id
        return response


class ApiBodyGuardMiddleware:
    """Refuse what the API cannot take before anything reads it: 413 for an oversized
    body, 415 for a body that is not JSON. Answered in the API's error shape."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/") and request.method in ("POST", "PUT", "PATCH"):
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return _json_error(400, "Content-Length is not a number")
            if length > limit:
                return _json_error(413, f"Request body is larger than {limit} bytes")
            if request.content_type != "application/json":
                return _json_error(415, "Send the request body as application/json")
            if json_depth(request.body) > MAX_JSON_DEPTH:
                return _json_error(400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        return self.get_response(request)


# An order is three levels deep (order -> items -> item); anything far deeper is an attack
# on the parser (a recursion error), refused before it is parsed.
MAX_JSON_DEPTH = 8


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text, counted without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # closing quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def _json_error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message, "fields": {}}, status=status)
