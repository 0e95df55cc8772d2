"""Every process of the shop skips the garbage collections of Python's finalization (shop/celery.py):
with Django and Celery loaded they cost about a second of CPU per process at exit, and a dozen
processes stopping at once on two cores took seconds after their work was done."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.harness import ROOT

# An atexit hook registered before the app runs after the app's own (they run last in, first out).
PROBE = """
import atexit, gc
atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count() > 0))
import django
django.setup()
import shop
print("frozen before exit:", gc.get_freeze_count() > 0)
"""


def test_a_process_that_loaded_the_app_leaves_its_heap_out_of_the_collections_at_exit():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "shop.settings"}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "frozen before exit: False" in done.stdout, done.stdout  # collected as usual while it runs
    assert "frozen at exit: True" in done.stdout, done.stdout
