"""The benchmark's outputs: results.json summarised over seeds, as a markdown table and a PNG plot."""
import io
import math
import os
from typing import Dict, List

import matplotlib

matplotlib.use("agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nnunetv2_tevia.io_utils import atomic_write_bytes  # noqa: E402

SCORES = ("per_case_dice", "per_case_iou", "pooled_dice", "pooled_iou")
COSTS = ("seconds_per_iteration", "peak_rss_mib", "peak_tree_pss_mib", "peak_gpu_mib", "train_wall_minutes")
CONVENTIONS = (
    "**Per-case** Dice / IoU: computed on every test case, then averaged over cases (nnU-Net's and LViT's "
    "convention). **Pooled** Dice / IoU: true positives, false positives and false negatives summed over all "
    "pixels of all test cases, then one score (Ariadne's Thread's / LanGuideMedSeg's convention). A case with an "
    "empty prediction and an empty ground truth scores 1 per case. With several foreground labels, each number "
    "is the mean over labels. Over seeds: mean ± sample standard deviation (n = number of seeds).")


def _flat(run: Dict) -> Dict[str, float]:
    """The numbers of one run, by name (NaN where a number is missing)."""
    scores = run.get("scores", {}).get("mean_over_labels", {})
    out = {k: scores.get(k, math.nan) for k in SCORES}
    out["seconds_per_iteration"] = run.get("timing", {}).get("seconds_per_iteration", math.nan)
    train = run.get("train_measure", {})
    out["peak_rss_mib"] = train.get("peak_rss_mib", math.nan)
    out["peak_tree_pss_mib"] = train.get("peak_tree_pss_mib", math.nan)
    out["peak_gpu_mib"] = run.get("peak_gpu_mib") if run.get("peak_gpu_mib") is not None else math.nan
    wall = train.get("wall_seconds")
    out["train_wall_minutes"] = wall / 60 if wall is not None else math.nan
    return {k: (math.nan if v is None else float(v)) for k, v in out.items()}


def summarise_runs(runs: List[Dict]) -> Dict[str, Dict]:
    """Per base trainer and number: mean, sample sd, min, max and n over the finished seeds."""
    by_trainer: Dict[str, List[Dict]] = {}
    for run in runs:
        by_trainer.setdefault(run["base_trainer"], []).append(run)
    summary = {}
    for trainer, trainer_runs in by_trainer.items():
        entry = {"seeds": sorted(r["seed"] for r in trainer_runs)}
        for key in SCORES + COSTS:
            values = np.array([v for v in (_flat(r)[key] for r in trainer_runs) if not math.isnan(v)])
            entry[key] = {"n": int(values.size),
                          "mean": float(values.mean()) if values.size else math.nan,
                          "sd": float(values.std(ddof=1)) if values.size > 1 else math.nan,
                          "min": float(values.min()) if values.size else math.nan,
                          "max": float(values.max()) if values.size else math.nan}
        summary[trainer] = entry
    return summary


def _number(value: float, digits: int) -> str:
    return "–" if math.isnan(value) else f"{value:.{digits}f}"


def _cell(stat: Dict, digits: int) -> str:
    if stat["n"] == 0:
        return "–"
    text = f"{stat['mean']:.{digits}f}"
    if stat["n"] > 1:
        text += f" ± {stat['sd']:.{digits}f}"
    return text


def code_text(code: Dict) -> str:
    """A provenance record's code version in words (nnunetv2_tevia/evaluation/provenance.py)."""
    if "git_commit" in code:
        return f"commit {code['git_commit'][:10]}" + (" with uncommitted changes" if code.get("uncommitted_changes")
                                                       else "")
    return f"nnunetv2-tevia {code.get('package_version', 'unknown')}"


def markdown(results: Dict) -> str:
    cfg, machine = results["config"], results["machine"]
    summary = summarise_runs([r for r in results["runs"] if r.get("scores")])
    lines = [f"# Benchmark: {cfg['dataset']}, configuration {cfg['configuration']}, {cfg['budget']} budget", ""]
    gpu = f", GPU {machine['gpu']}" if machine.get("gpu") else ""
    lines.append(f"Machine: {machine['cpu']}, {machine.get('usable_cpus', machine['logical_cpus'])} usable CPU "
                 f"cores{gpu}; device `{machine['device']}`; torch {machine['torch']}, nnunetv2 "
                 f"{machine.get('nnunetv2', '?')}.")
    loads = [r["train_measure"]["load_average_start"] for r in results["runs"]
             if r.get("train_measure", {}).get("load_average_start")]
    if loads:
        one_minute = [l[0] for l in loads]
        lines.append(f"1-minute load average when the trainings started: {min(one_minute):.1f}–"
                     f"{max(one_minute):.1f} (above the core count means other jobs shared the machine and the "
                     f"times are slower than on a quiet one).")
    lines.append(f"Budget: {cfg['budget_description']}.")
    lines.append(f"Split: fold {cfg['fold']} of splits_final.json, {cfg['n_train']} training cases, {cfg['n_val']} "
                 f"held out of imagesTr for nnU-Net's per-epoch pseudo Dice; every model predicts with "
                 f"checkpoint_final.pth. Test: {cfg['n_test']} cases of imagesTs scored against labelsTs.")
    models = [r["made_by"]["model"] for r in results["runs"] if (r.get("made_by") or {}).get("model")]
    if models:
        folders = sorted({r["model_folder"] for r in results["runs"]})
        lines.append(f"Made by: {', '.join(sorted({code_text(m['code']) for m in models}))}; models in "
                     f"{os.path.commonpath(folders) if len(folders) > 1 else folders[0]}. Each row's model folder, "
                     f"the arguments that trained it and the prediction it scores: results.json (`made_by`).")
    lines += ["", "| trainer | seeds | per-case Dice | per-case IoU | pooled Dice | pooled IoU | s / iteration | "
                  "peak RSS (MiB) | peak GPU (MiB) | training wall time (min) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for trainer, s in summary.items():
        lines.append(f"| {trainer} | {' '.join(map(str, s['seeds']))} | {_cell(s['per_case_dice'], 4)} | "
                     f"{_cell(s['per_case_iou'], 4)} | {_cell(s['pooled_dice'], 4)} | {_cell(s['pooled_iou'], 4)} | "
                     f"{_cell(s['seconds_per_iteration'], 2)} | {_cell(s['peak_rss_mib'], 0)} | "
                     f"{_cell(s['peak_gpu_mib'], 0)} | {_cell(s['train_wall_minutes'], 1)} |")
    lines += ["", CONVENTIONS, "",
              "Seconds per iteration: the median epoch time of nnU-Net's epoch timestamps (first epoch left out) "
              "divided by the training iterations per epoch; an epoch also holds a few validation iterations, the "
              "checkpoint and the progress plot. Peak RSS: the training process's own high-water mark (VmHWM); "
              "its data-augmentation workers come on top (the peak of the summed proportional set size of the "
              "process and its workers, sampled every 10 s, is in results.json as peak_tree_pss_mib). Training "
              "wall time includes process start-up.", "",
              "## Runs", "",
              "| trainer | seed | per-case Dice | pooled Dice | s / iteration | peak RSS (MiB) | prediction (s) |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in results["runs"]:
        f = _flat(r)
        pred = r.get("predict_measure", {}).get("wall_seconds", math.nan)
        lines.append(f"| {r['trainer']} | {r['seed']} | {_number(f['per_case_dice'], 4)} | "
                     f"{_number(f['pooled_dice'], 4)} | {_number(f['seconds_per_iteration'], 2)} | "
                     f"{_number(f['peak_rss_mib'], 0)} | {_number(pred, 0)} |")
    missing = [f"{r['trainer']} (seed {r['seed']})" for r in results["runs"] if not r.get("scores")]
    if missing:
        lines += ["", f"Not finished yet: {', '.join(missing)}."]
    return "\n".join(lines) + "\n"


def plot(results: Dict, png_file: str) -> None:
    runs = [r for r in results["runs"] if r.get("scores")]
    summary = summarise_runs(runs)
    trainers = list(summary)
    if not trainers:
        return
    x = np.arange(len(trainers))
    fig, (ax, ax_time) = plt.subplots(1, 2, figsize=(max(8, 2.2 * len(trainers) + 4), 5),
                                      gridspec_kw={"width_ratios": [3, 1.4]})
    width = 0.38
    for offset, key, label in ((-width / 2, "per_case_dice", "per-case Dice (mean over cases)"),
                               (width / 2, "pooled_dice", "pooled Dice (all pixels)")):
        means = [summary[t][key]["mean"] for t in trainers]
        sds = [summary[t][key]["sd"] if summary[t][key]["n"] > 1 else 0 for t in trainers]
        ax.bar(x + offset, means, width, yerr=sds, capsize=4, label=label)
        for i, t in enumerate(trainers):  # every seed as a dot, so two seeds are not mistaken for a spread
            seeds = [_flat(r)[key] for r in runs if r["base_trainer"] == t]
            ax.scatter([i + offset] * len(seeds), seeds, color="black", s=12, zorder=3)
    ax.set_xticks(x, [t.replace("nnUNetTrainer", "") or "nnU-Net" for t in trainers], rotation=20)
    ax.set_ylabel("Dice on the test folder")
    ax.set_ylim(0, 1.15)  # headroom for the legend above bars that reach 1
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.legend(loc="upper center", ncol=2, fontsize=9)
    ax.set_title(f"{results['config']['dataset']}, {results['config']['budget']} budget")
    spi = [summary[t]["seconds_per_iteration"]["mean"] for t in trainers]
    ax_time.bar(x, spi, color="grey")
    ax_time.set_xticks(x, [t.replace("nnUNetTrainer", "") or "nnU-Net" for t in trainers], rotation=45, ha="right")
    ax_time.set_ylabel("seconds per training iteration")
    ax_time.set_title(results["machine"].get("gpu") or results["machine"]["cpu"], fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(png_file, buffer.getvalue())
