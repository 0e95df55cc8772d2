"""WSGI entry point (granian --interface wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

from shop.local.bootstrap import bootstrap

bootstrap()
application = get_wsgi_application()
