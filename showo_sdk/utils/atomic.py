"""Atomic writes: data goes to a temp file in the target's directory, then ``os.replace``.

A reader never sees a half-written file, and a process killed midway leaves the old file intact.

Temp names carry the writer's PID (``.NAME.<pid>.<random>.tmp`` / ``.old``), so the next atomic
write to the same target removes what a killed writer (a PID that no longer exists) left behind.
Directories are replaced with Linux ``renameat2(RENAME_EXCHANGE)``: the target always exists, holding
the old or the new tree; where that call is unavailable the old directory is renamed aside first,
and a later ``atomic_dir`` restores it if the writer died before renaming the new one in.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_renameat2 = None  # None: not looked up yet; False: unavailable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _get_renameat2():
    global _renameat2
    if _renameat2 is None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            func = libc.renameat2
            func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            func.restype = ctypes.c_int
            _renameat2 = func
        except (OSError, AttributeError):
            _renameat2 = False
    return _renameat2 or None


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths; False where the platform or filesystem cannot."""
    func = _get_renameat2()
    if func is None:
        return False
    # The same audit event as os.rename, so hooks watching the filesystem see this rename too.
    sys.audit("os.rename", str(a), str(b), -1, -1)
    if func(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
        return False  # old kernel or a filesystem without RENAME_EXCHANGE: use the two-rename scheme
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return True  # never treat odd values as dead
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return True
    return True


def _siblings(target: Path) -> list[tuple[Path, int | None, str]]:
    """Temp entries beside ``target`` made by atomic writes: (path, writer pid or None, kind).

    ``.fp32`` is the exporter's scratch directory; it is only recognised (and removed when stale)
    once its name carries the writer's PID like ours: ``.NAME.<pid>.<random>.fp32``.
    """
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(?:(\d+)\.)?[A-Za-z0-9_]+\.(tmp|old|fp32)$")
    out = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return out
    for entry in entries:
        m = pattern.match(entry.name)
        if m:
            out.append((Path(entry.path), int(m.group(1)) if m.group(1) else None, m.group(2)))
    return out


def _stale(pid: int | None) -> bool:
    return pid is not None and pid != os.getpid() and not _pid_alive(pid)


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink()
    except OSError:
        pass


def _recover_and_clean(target: Path) -> None:
    """Restore a directory a killed two-rename swap left aside, then drop dead writers' temp entries."""
    siblings = _siblings(target)
    if not os.path.lexists(target):
        olds = [p for p, pid, kind in siblings if kind == "old" and (pid is None or _stale(pid))
                and (p / "x").is_dir()]
        if len(olds) == 1:
            with contextlib.suppress(OSError):
                os.rename(olds[0] / "x", target)
    target_there = os.path.lexists(target)
    for path, pid, kind in siblings:
        if _stale(pid) and (kind != "old" or target_there or not (path / "x").exists()):
            _remove(path)  # an aside copy is kept while it may be the only one left


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success it is renamed onto ``path``, else removed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale, pid, kind in _siblings(target):
        if kind == "tmp" and _stale(pid) and not stale.is_dir():
            _remove(stale)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp's 0600 would make the final file private
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _swap_in(tmp: Path, target: Path, prefix: str, overwrite: bool) -> None:
    """Put the finished ``tmp`` at ``target``; an old ``target`` ends up at ``tmp`` (or is removed)."""
    for _ in range(10):
        if not os.path.lexists(target):
            try:
                os.rename(tmp, target)
                return
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not overwrite:
                    raise
                continue  # another writer put a directory there meanwhile: swap with it
        try:
            if _exchange(tmp, target):
                return  # the old tree is now at tmp; the caller removes it
        except FileNotFoundError:
            continue  # the target vanished meanwhile: rename into place
        # Two-rename fallback: a kill between the renames leaves the old tree at .NAME.<pid>.*.old/x,
        # which the next atomic_dir on this target restores.
        old = Path(tempfile.mkdtemp(prefix=prefix, suffix=".old", dir=target.parent))
        os.replace(target, old / "x")
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
        return
    raise OSError(errno.EBUSY, f"could not move {tmp} into place at {target}: it keeps changing")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temp directory beside ``path``; on success it replaces ``path`` as a whole.

    With ``overwrite`` an existing directory is swapped out (exchanged atomically, then deleted) only
    after the new one is complete, so an interrupted write never destroys the old one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _recover_and_clean(target)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists (pass overwrite/--force to replace it)")
    prefix = f".{target.name}.{os.getpid()}."
    tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 would make the final directory private
    try:
        yield tmp
        for sub in tmp.rglob("*"):  # writers such as safetensors create 0600 files; honour the umask
            if sub.is_file() and not sub.is_symlink():
                os.chmod(sub, 0o666 & ~_umask())
        if os.path.lexists(target) and not overwrite:
            raise FileExistsError(f"{target} appeared while writing (pass overwrite/--force to replace it)")
        _swap_in(tmp, target, prefix, overwrite)
    finally:
        if os.path.lexists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
