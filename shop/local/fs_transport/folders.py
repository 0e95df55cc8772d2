"""The broker's folders under one base dir, its transport options, and the names of its files.

Kept apart from the channel so that both the transport and the callers that only set a broker
up (settings, ``reset``) read one definition of the layout."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

ALIAS = "fsatomic"
FOLDERS = ("queue", "staging", "claimed", "processed", "control")


def transport_options(
    base_dir: Path, *, delivery_limit: int | None = None, dead_letter_queue: str | None = None
) -> dict[str, Any]:
    """``broker_transport_options`` for a broker kept under ``base_dir`` (folders are created).

    With ``dead_letter_queue``, a message rejected without requeue, or returned to its queue
    more than ``delivery_limit`` times, is moved to that queue instead of deleted or looped.
    """
    folders = {name: Path(base_dir, name).resolve() for name in FOLDERS}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(folders["queue"]),
        "data_folder_out": str(folders["queue"]),
        "staging_folder": str(folders["staging"]),
        "claimed_folder": str(folders["claimed"]),
        "processed_folder": str(folders["processed"]),
        "control_folder": str(folders["control"]),
        "store_processed": False,
        "polling_interval": 0.1,  # kombu's default of 1 s makes every hop of a demo order visibly slow
        "delivery_limit": delivery_limit,
        "dead_letter_queue": dead_letter_queue,
    }


def control_key(options: dict[str, Any]) -> str:
    return str(Path(options.get("control_folder", "control")).resolve())


def queue_of(name: str) -> str:
    """The queue a message file belongs to (kombu's scheme: ``<time>_<uuid>.<queue>.msg``)."""
    return name.partition(".")[2].removesuffix(".msg")


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie that was not reaped yet is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True
