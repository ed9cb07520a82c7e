"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Each write goes to a temporary file in the same folder, is flushed to disk, then renamed over the
target with ``os.replace`` (atomic on POSIX and Windows when both live on one file system).
"""
import io
import json
import os
import tempfile

import numpy as np


def atomic_write_bytes(path: str, data: bytes) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600 files; give the file the permissions a plain open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_json(path: str, obj, indent: int = 2) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=indent, ensure_ascii=False) + "\n").encode("utf-8"))


def atomic_save_npz(path: str, **arrays: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def atomic_torch_save(obj, path: str) -> None:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def remove_orphaned_temp_files(path: str) -> list:
    """Remove ``<path>.tmp-<pid>`` files whose writing process no longer runs (a kill -9 during the write), and
    return them. Files of a live process (another rank, another training) are left alone."""
    removed = []
    folder, name = os.path.split(os.path.abspath(path))
    if not os.path.isdir(folder):
        return removed
    for f in os.listdir(folder):
        pid = f[len(name) + len(".tmp-"):] if f.startswith(name + ".tmp-") else ""
        if not pid.isdigit() or _process_alive(int(pid)):
            continue
        try:
            os.remove(os.path.join(folder, f))
            removed.append(os.path.join(folder, f))
        except FileNotFoundError:
            pass
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
