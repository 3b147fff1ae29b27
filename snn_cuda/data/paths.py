"""Where snn_cuda keeps what it makes from data: generated synthetic sets and parsed-event caches."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path

DATA_ENV = "SNN_CUDA_DATA"
# A private build folder whose process is gone and which has not changed for this long was abandoned (below).
ABANDONED_AFTER_S = 3600


def data_root() -> Path:
    """Where generated data sets and caches live by default: ``$SNN_CUDA_DATA``, else ``~/.cache/snn_cuda``."""
    return Path(os.environ.get(DATA_ENV) or Path.home() / ".cache" / "snn_cuda")


def build_folder(target: Path, build: Callable[[Path], None], is_complete: Callable[[Path], bool]) -> None:
    """Runs ``build(folder)`` in a private folder beside ``target`` and renames it to ``target`` whole
    (:func:`move_into_place`), so an interrupted build leaves nothing that looks complete and two processes
    building the same target never remove each other's work. The private folder is removed if either fails
    (those of builds killed outright: :func:`remove_abandoned_folders`)."""
    partial = _private_folder_beside(target)
    try:
        build(partial)
        move_into_place(partial, target, is_complete)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _private_folder_beside(target: Path) -> Path:
    """A new empty folder next to ``target``, named after it and unique to this call. Made with the umask's
    permissions, as ``target`` would be (not the owner-only ones of ``tempfile.mkdtemp``: caches and data sets are
    often shared)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    while True:
        partial = target.parent / f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.partial"
        try:
            partial.mkdir()
            return partial
        except FileExistsError:
            continue


def _process_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def remove_abandoned_folders(target: Path) -> list[Path]:
    """Removes the private build folders of ``target`` (:func:`_private_folder_beside`) left by builds killed
    without a chance to clean up (SIGKILL, the out-of-memory killer, a power cut): those whose process no longer
    runs on this machine and that have not changed for ``ABANDONED_AFTER_S`` (on a shared file system a folder may
    belong to a live process on another machine, whose pid means nothing here). Called wherever ``target`` is
    looked up, built or not, so a killed build's folder goes even when a restart finished the target at once.
    Returns the folders removed."""
    removed = []
    suffix = ".partial"
    prefix = f".{target.name}."
    for folder in target.parent.glob(f"{glob.escape(prefix)}*{suffix}"):
        pid = folder.name[len(prefix) : -len(suffix)].split("-", 1)[0]
        if not pid.isdigit() or _process_runs(int(pid)):
            continue
        try:
            idle = time.time() - folder.stat().st_mtime
        except OSError:  # removed meanwhile by another process
            continue
        if idle > ABANDONED_AFTER_S:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def move_into_place(partial: Path, target: Path, is_complete: Callable[[Path], bool]) -> None:
    """Renames the folder ``partial`` to ``target`` (replacing an empty folder there). If another process put a
    complete ``target`` there first, keeps that one (the same content) and removes ``partial``; anything else
    already at ``target`` is an error, never deleted."""
    try:
        os.rename(partial, target)
    except OSError:
        if not is_complete(target):
            raise
        shutil.rmtree(partial)
