"""The web ceiling's application: the shop's settings and middleware, one view, one INSERT.

Served by the demo's own web server command with only the WSGI target swapped, it is
what a request costs before any of the shop's work: the server, Django's request cycle
with the shop's middleware, a database connection made as the shop makes them
(``CONN_MAX_AGE=0``: one per request unless ``DATABASE_POOL`` is on) and one committed row.
The table is the bench's own (``bench/ceiling_names.py``), created and dropped by ``bench/ceilings.py``.
"""

from __future__ import annotations

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from bench.ceiling_names import PATH, TABLE
from shop.local.bootstrap import bootstrap


@csrf_exempt
def insert(request: HttpRequest) -> JsonResponse:
    """One row in autocommit, answered as the checkout answers (201 with an id); the body is ignored."""
    with connection.cursor() as cur:
        cur.execute(f"INSERT INTO {TABLE} (payload) VALUES (%s) RETURNING id", ["ceiling"])
        (row_id,) = cur.fetchone()
    return JsonResponse({"id": str(row_id)}, status=201)


urlpatterns = [path(PATH.lstrip("/"), insert)]

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
bootstrap()
settings.ROOT_URLCONF = __name__  # everything else as the shop has it
application = get_wsgi_application()
