"""Flower's configuration: ``celery -A shop flower --conf=shop/flowerconfig.py`` (shop/local/processes.py).

Flower executes this file and reads the option names it defines. It closes
three doors that Flower 2.2 leaves open:

- no login configured means every page and the API are open: refuse to start
  without ``FLOWER_BASIC_AUTH`` (``user:password``; OAuth via ``FLOWER_AUTH`` also counts);
- ``/metrics`` is served without the login every other page asks for: it gets the same one;
- the API can run any task (``/api/task/async-apply/...``: approve a fraud review, replay a
  step) and revoke or shut down workers: read-only unless ``FLOWER_READ_ONLY=0``.
"""

import os

import tornado.web
from flower.views.monitor import Metrics
from tornado.options import options as _flower_options

from shop.pipeline.priority import step_aside

if not getattr(Metrics.get, "_needs_login", False):
    Metrics.get = tornado.web.authenticated(Metrics.get)
    Metrics.get._needs_login = True

if not (_flower_options.basic_auth or _flower_options.auth):
    raise SystemExit("Flower needs a login: set FLOWER_BASIC_AUTH=user:password (see .env.example)")

# Flower applies FLOWER_* variables before this file, which would override them: read it here.
read_only = os.environ.get("FLOWER_READ_ONLY", "1").strip().lower() not in {"0", "false", "no", "off"}

# Flower keeps every task it has seen in memory, 100,000 by default: about 15 tasks an order,
# so its memory grew by 300 MB over 2,000 orders, measured; capped at 10,000 it still grew by
# 112 MB (about 11 kB a task), a tenth of the whole shop. The last 2,000 tasks (some 130 orders)
# are what a person looks at in Flower; an order's whole history is its timeline, and the
# operations page and the checker read the database.
max_tasks = int(os.environ.get("FLOWER_MAX_TASKS", "2000"))

# Monitoring gives way to the work it watches (shop/pipeline/priority.py).
step_aside(int(os.environ.get("FLOWER_NICENESS", "10")))
