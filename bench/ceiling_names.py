"""Names shared by the web ceiling's application and the code that measures it.

Apart from ``bench/ceiling_app.py`` because importing that module builds a WSGI application
(and points Django at its own urlconf), which the measuring process must never do.
"""

TABLE = "bench_ceiling_row"
PATH = "/ceiling/insert"
