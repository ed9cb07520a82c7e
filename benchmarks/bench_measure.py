"""What the benchmark measures besides the scores: the machine, a watched subprocess, step times, GPU memory."""
import json
import os
import platform
import subprocess
import time
from typing import Dict, List, Optional

import numpy as np
import torch


def machine_info(device: str) -> Dict:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    info = {"cpu": cpu, "logical_cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__, "device": device, "gpu": None}
    if hasattr(os, "sched_getaffinity"):
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        import nnunetv2  # noqa: F401
        from importlib.metadata import version
        info["nnunetv2"] = version("nnunetv2")
    except Exception:  # a version string is nice to have, never worth failing the benchmark
        pass
    return info


def load_average() -> Optional[List[float]]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _proc_kib(pid: int, file: str, field: str) -> int:
    """A memory field of ``/proc/<pid>/<file>`` in KiB; 0 once the process is gone or without the field."""
    try:
        with open(f"/proc/{pid}/{file}") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _tree_pss_kib(pid: int) -> int:
    # PSS splits pages shared after fork() among the processes that share them; RSS would count them per worker
    return sum(_proc_kib(p, "smaps_rollup", "Pss") or _proc_kib(p, "status", "VmRSS")
               for p in [pid, *_descendants(pid)])


def _descendants(pid: int) -> List[int]:
    children: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                # the command name may hold spaces and parentheses; the fields after the last ')' do not
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def run_watched(cmd: List[str], env: Dict[str, str], log_file: str, poll_seconds: float = 1.0,
                tree_every: int = 10) -> Dict:
    """Run ``cmd`` with its output appended to ``log_file``; return its exit code, wall time and peak memory.

    ``peak_rss_mib``: the process's own high-water mark (VmHWM), exact. ``peak_tree_pss_mib``: the largest sum of
    proportional set sizes of the process and its children (nnU-Net's data-augmentation workers) seen at one
    poll, so a short spike between polls can be missed. Linux only; elsewhere both are 0. The tree is read
    every ``tree_every`` polls only: walking /proc for the children and reading their smaps took about 10 % of a
    core at one read per second, which on a 2-core machine would slow the very training being measured.
    """
    start_load = load_average()
    t0 = time.time()
    with open(log_file, "a") as log:
        log.write(f"\n$ {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        hwm = tree = polls = 0
        while proc.poll() is None:
            hwm = max(hwm, _proc_kib(proc.pid, "status", "VmHWM"))
            if polls % tree_every == 0:
                tree = max(tree, _tree_pss_kib(proc.pid))
            polls += 1
            time.sleep(poll_seconds)
    return {"returncode": proc.returncode, "wall_seconds": round(time.time() - t0, 1),
            "peak_rss_mib": round(hwm / 1024, 1), "peak_tree_pss_mib": round(tree / 1024, 1),
            "load_average_start": start_load, "load_average_end": load_average()}


def seconds_per_iteration(model_folder: str, checkpoint_name: str = "checkpoint_final.pth") -> Dict:
    """Training seconds per iteration from nnU-Net's epoch timestamps in a checkpoint.

    An epoch's time covers its training iterations and also its few validation iterations, the checkpoint
    and the progress plot. The first epoch (worker start-up, first-call overheads) is left out when there
    are later ones; the median of the others is divided by the iterations per epoch, which nnU-Net records
    with every other trainer attribute in debug.json.
    """
    ckpt = torch.load(os.path.join(model_folder, checkpoint_name), map_location="cpu", weights_only=False)
    start = np.asarray(ckpt["logging"]["epoch_start_timestamps"], dtype=float)
    end = np.asarray(ckpt["logging"]["epoch_end_timestamps"], dtype=float)
    n = min(len(start), len(end))
    durations = end[:n] - start[:n]
    with open(os.path.join(model_folder, "debug.json")) as f:
        iterations = int(json.load(f)["num_iterations_per_epoch"])
    steady = durations[1:] if n > 1 else durations
    return {"epochs": int(n), "iterations_per_epoch": iterations,
            "seconds_per_iteration": float(np.median(steady) / iterations) if n else float("nan"),
            "first_epoch_seconds": float(durations[0]) if n else float("nan"),
            "training_seconds_from_timestamps": float(end[n - 1] - start[0]) if n else float("nan")}


def peak_gpu_memory_mib(model_folder: str, marker: str) -> Optional[float]:
    """The peak the budget variants print into the training log (the last one, if training was resumed)."""
    value = None
    for name in sorted(os.listdir(model_folder)):
        if name.startswith("training_log") and name.endswith(".txt"):
            with open(os.path.join(model_folder, name)) as f:
                for line in f:
                    if marker in line:
                        value = float(line.rsplit(marker, 1)[1].split()[0])
    return value
