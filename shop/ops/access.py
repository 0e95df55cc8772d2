"""Who may see the operations page and the metrics: staff only.

The page sends an anonymous visitor to the admin's login and answers 403 to a logged-in user who
is not staff (``staff_member_required`` would send both to the login, which hides the refusal).
``/metrics`` also takes ``Authorization: Bearer <METRICS_TOKEN>`` for a scraper, and nothing else:
no localhost exception, since behind a reverse proxy on the same host every request is local.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.urls import reverse


def is_staff(request: HttpRequest) -> bool:
    user = request.user
    return bool(user.is_authenticated and user.is_active and user.is_staff)


def staff_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Anonymous: redirect to the admin login (back here after it); non-staff: 403."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        if not is_staff(request):
            raise PermissionDenied("The operations page is for staff.")
        return view(request, *args, **kwargs)

    return wrapped


def bearer_ok(request: HttpRequest) -> bool:
    """True when ``METRICS_TOKEN`` is set and the request carries it (compared in constant time)."""
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if not token or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header.removeprefix("Bearer ").strip().encode(), token.encode())
