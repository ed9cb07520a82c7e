"""One writer at a time per text cache: ``with cache_lock(root): ...`` around every write.

The lock is an advisory ``flock`` on ``<root>/writer.lock``. The kernel releases it when its process ends, however
it ends (kill -9 included), so a lock left by a dead process is never in the way. The file names the holder (pid,
host, command, start time) for the message of whoever finds the lock taken, and is emptied on release.
"""
import contextlib
import json
import os
import socket
import sys
from datetime import datetime, timezone
from typing import Optional

from nnunetv2_tevia.errors import TextCacheError

LOCK_FILE = "writer.lock"

try:
    import fcntl
except ImportError:  # Windows: no flock; writers are not serialised there
    fcntl = None


def lock_holder(root: str) -> Optional[dict]:
    """Who ``root``'s lock file names as its writer (pid, host, command, since), or None when it names nobody."""
    try:
        with open(os.path.join(root, LOCK_FILE), encoding="utf-8") as f:
            holder = json.loads(f.read() or "null")
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _describe(root: str) -> str:
    h = lock_holder(root) or {}
    if not h.get("pid"):
        return "another process"
    return f"pid {h['pid']} on {h.get('host', '?')} (`{h.get('command', '?')}`, since {h.get('since', '?')})"


@contextlib.contextmanager
def cache_lock(root: str, wait: bool = False):
    """Hold ``root``'s writer lock for the block. Taken by another process: a TextCacheError naming the holder,
    or with ``wait`` (prediction's own cache, shared by -num_parts runs), wait for it."""
    if fcntl is None:
        yield
        return
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, LOCK_FILE), "a+", encoding="utf-8") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise TextCacheError(
                    f"text cache {root} is being written by {_describe(root)}: wait until it has finished (or stop "
                    f"it), then run this command again: one command writes a text cache at a time") from None
            print(f"waiting for {_describe(root)} to finish writing the text cache {root}", file=sys.stderr)
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            f.truncate(0)
            f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
                                "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}))
            f.flush()
            yield
        finally:
            f.truncate(0)
            f.flush()
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
