"""WSGI entry point (granian --interface wsgi).

Importing it is what makes a process the web server: ``SHOP_PROCESS_ROLE=web`` gives it
the connection pool and the statement timeout (shop/connections.py). A process whose
settings are already loaded (a test importing the app) is left as it is, and passes
nothing on to its children.
"""

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
if not settings.configured:
    os.environ.setdefault("SHOP_PROCESS_ROLE", "web")

from shop.local.bootstrap import bootstrap

bootstrap()
application = get_wsgi_application()
