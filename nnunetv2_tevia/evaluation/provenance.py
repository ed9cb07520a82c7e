"""What made each result of the demo and the benchmark: a ``made_by.json`` beside it.

A record holds the arguments that made the folder's content, the records it was made from (``inputs``: their ids),
the code version, and whether the step finished (``complete``). It is written when a step starts, so an interrupted
step is known as such, and every start gets a new id, so whatever was made from an earlier model or dataset no
longer matches its ``inputs``. Only arguments and inputs are compared: the code version is recorded, not enforced
(a commit of the documentation would otherwise throw every model away).
"""
import functools
import hashlib
import json
import os
import shutil
import subprocess
import time
import uuid
from typing import Dict, Iterable, Optional

from nnunetv2_tevia.io_utils import atomic_write_json

RECORD_FILE = "made_by.json"


@functools.lru_cache(maxsize=1)
def code_version() -> Dict:
    """The git commit of the checkout this package runs from (and whether it has uncommitted changes), else the
    installed package's version."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    checkout = os.path.dirname(package)
    try:
        def git(*args):
            return subprocess.run(["git", "-C", checkout, *args], capture_output=True, text=True, timeout=30,
                                  check=True).stdout.strip()

        # only the checkout the package itself lives in, not a repository that happens to hold site-packages
        if os.path.realpath(git("rev-parse", "--show-toplevel")) == os.path.realpath(checkout):
            return {"git_commit": git("rev-parse", "HEAD"),
                    "uncommitted_changes": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return {"package_version": version("nnunetv2-tevia")}
    except PackageNotFoundError:
        return {"package_version": "unknown"}


def file_sha256(path: Optional[str]) -> Optional[str]:
    if path is None:
        return None
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _as_json(value):
    return json.loads(json.dumps(value))


def read_record(folder: str) -> Optional[Dict]:
    path = os.path.join(folder, RECORD_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def start_record(folder: str, arguments: Dict, inputs: Optional[Dict] = None) -> Dict:
    """Write a new record (new id, not complete) into ``folder``, creating it."""
    record = {"arguments": _as_json(arguments), "inputs": _as_json(inputs or {}), "code": code_version(),
              "id": uuid.uuid4().hex, "started": time.strftime("%Y-%m-%d %H:%M:%S"), "complete": False}
    atomic_write_json(os.path.join(folder, RECORD_FILE), record)
    return record


def finish_record(folder: str) -> Dict:
    record = dict(read_record(folder), complete=True, finished=time.strftime("%Y-%m-%d %H:%M:%S"))
    atomic_write_json(os.path.join(folder, RECORD_FILE), record)
    return record


def mismatch(record: Optional[Dict], arguments: Dict, inputs: Optional[Dict] = None) -> Optional[str]:
    """None when ``record`` was made with ``arguments`` from ``inputs``; otherwise what differs, in words."""
    if record is None:
        return "no record of the arguments that made it"
    old, new = record.get("arguments", {}), _as_json(arguments)
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            return f"{key} was {old.get(key, 'not recorded')!r}, now {new.get(key, 'not given')!r}"
    old_inputs, new_inputs = record.get("inputs", {}), _as_json(inputs or {})
    changed = [k for k in sorted(set(old_inputs) | set(new_inputs)) if old_inputs.get(k) != new_inputs.get(k)]
    if changed:
        return f"made from another {' and '.join(changed)} (made again since)"
    return None


def stale_reason(folder: str, arguments: Dict, inputs: Optional[Dict] = None,
                 expected: Iterable[str] = ()) -> Optional[str]:
    """None when ``folder`` holds the finished result of ``arguments`` made from ``inputs``, with every path of
    ``expected``; otherwise why not, in words."""
    record = read_record(folder)
    why = mismatch(record, arguments, inputs)
    if why is None and not record.get("complete"):
        why = "it was interrupted"
    if why is None:
        missing = [p for p in expected if not os.path.exists(p)]
        why = f"{missing[0]} is missing" if missing else None
    return why


def reuse_or_clear(folder: str, arguments: Dict, inputs: Optional[Dict] = None,
                   expected: Iterable[str] = ()) -> Optional[str]:
    """``stale_reason``, and the folder removed when it is not None.

    An interrupted step is never resumed from its files: a prediction file that nnU-Net was writing when it was
    killed can be half written and still readable (a truncated .nii.gz reads without error).
    """
    why = stale_reason(folder, arguments, inputs, expected)
    if why is not None and os.path.isdir(folder):
        shutil.rmtree(folder)
    return why
