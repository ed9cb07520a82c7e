"""Find the console scripts of the running environment even when it is not activated.

`.venv/bin/nnUNetv2_tevia_demo` (or `.venv/bin/python benchmarks/...`) starts nnU-Net's and our own tools as
subprocesses by name. Without `source .venv/bin/activate` they are not on PATH, so the scripts folder of the
interpreter that runs us goes first on the subprocesses' PATH.
"""
import os
import sys
import sysconfig
from typing import Dict, Mapping, Optional


def scripts_dir() -> str:
    """The folder that holds this interpreter's console scripts (`.venv/bin` for a virtual environment)."""
    path = sysconfig.get_path("scripts")
    return path if path and os.path.isdir(path) else os.path.dirname(sys.executable)


def tool_env(env: Optional[Mapping[str, str]] = None, **extra: str) -> Dict[str, str]:
    """`env` (default: os.environ) plus `extra`, with this environment's scripts folder first on PATH."""
    out = dict(os.environ if env is None else env, **extra)
    parts = [p for p in out.get("PATH", "").split(os.pathsep) if p]
    here = scripts_dir()
    out["PATH"] = os.pathsep.join([here] + [p for p in parts if os.path.abspath(p) != os.path.abspath(here)])
    return out
