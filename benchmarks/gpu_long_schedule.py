"""Does the text gain hold over a longer schedule? Several trainers on one budget, with a learning curve.

    python benchmarks/gpu_long_schedule.py -d 501 -o OUT -device cuda                       # 48 x 250 = 12 000 steps
    python benchmarks/gpu_long_schedule.py -d 501 -o OUT -device cuda --epochs 40 --report-only
    python benchmarks/gpu_long_schedule.py -d 501 -o OUT -device cpu --epochs 80 --iterations 50 \
        --snapshot-every 10 --trainers nnUNetTrainer nnUNetTrainerTeViA     # CPU: 4000 steps, a snapshot every 500

1. Starts one ``run_benchmark.py --budget gpuShort`` per trainer: on CUDA all at once (the trainings share the GPU;
   the CPU cores are split between their data-augmentation workers), on the CPU one after another (--parallel). Each
   trains batch 8 for --epochs x --iterations steps as ``<trainer>_gpuShortBudget[<E>x<I>]``
   (benchmarks/trainers/bench_trainers.py; e.g. ``_gpuShortBudget80x50`` for the CPU run above), with nnU-Net's AMP
   on CUDA, keeps ``checkpoint_step<N>.pth`` every --snapshot-every epochs, predicts
   imagesTs with its final checkpoint, scores it against labelsTs and, for TeViA models, also predicts without
   any report.
2. Scores every snapshot of every model on imagesTs, in-process, one subprocess per trainer at a time (prediction
   without test-time mirroring for all, so that the curve compares the same work; the final rows of
   results.md keep each trainer's own choice). Both Dice conventions: mean over cases of the per-case Dice, and
   pooled over all pixels.
3. Writes OUT/curve.json, curve.md and curve.png next to run_benchmark's results.md.

A second call skips what is done (finished trainings, scored snapshots). ``--report-only`` only rewrites the
tables. Tested on the CPU at a tiny budget (tests/test_gpu_long_schedule.py); the device-machine command and
the measured numbers are in docs/benchmarks.md.
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys
import time
from typing import Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "trainers"))  # bench_trainers: the budget trainers (imported when needed)
from nnunetv2_tevia.cli.tool_path import tool_env  # noqa: E402

DEFAULT_TRAINERS = ("nnUNetTrainer", "nnUNetTrainerTeViA", "nnUNetTrainerTeViA_noText", "nnUNetTrainerTeViA_reference")


def budget_trainer(args, trainer: str) -> str:
    """The name ``trainer`` is trained under: the gpuShort budget at --epochs x --iterations, seed 0."""
    import bench_trainers

    return bench_trainers.make_budget(trainer, "gpuShort", args.epochs, args.iterations).trainer


def model_folder(args, dataset: str, trainer: str) -> str:
    return os.path.join(args.o, "models", "seed_0", dataset, f"{budget_trainer(args, trainer)}__{args.p}__{args.c}",
                        f"fold_{args.fold}")


def curve_scores_file(args, trainer: str) -> str:
    """Named by the budget trainer, as the model folder is: another budget in the same -o scores its own snapshots."""
    return os.path.join(args.o, "curve_scores", f"{budget_trainer(args, trainer)}.json")


def snapshot_steps(folder: str) -> List[int]:
    return sorted(int(re.search(r"step(\d+)\.pth$", p).group(1))
                  for p in glob.glob(os.path.join(folder, "checkpoint_step*.pth")))


def default_parallel(device: str, n_trainers: int) -> int:
    """All trainings at once on a GPU (small batch-8 trainings leave it mostly idle), one at a time on the CPU."""
    return n_trainers if device == "cuda" else 1


def train_all(args, env: Dict[str, str]) -> None:
    """One ``run_benchmark.py`` per trainer, ``args.parallel`` at a time, in the order given."""
    cpus = os.cpu_count() or 2
    parallel = max(1, min(args.parallel, len(args.trainers)))
    waiting, running, failed = list(args.trainers), [], []
    while waiting or running:
        while waiting and len(running) < parallel:
            trainer = waiting.pop(0)
            log = os.path.join(args.o, "logs", f"{trainer}.log")
            os.makedirs(os.path.dirname(log), exist_ok=True)
            cmd = [sys.executable, os.path.join(HERE, "run_benchmark.py"), *benchmark_args(args), "--trainers",
                   trainer]
            trainer_env = dict(env, nnUNet_n_proc_DA=str(max(1, (cpus - 1) // parallel)))
            print(f"[{time.strftime('%X')}] {' '.join(cmd)}  (log {log})", flush=True)
            running.append((trainer, subprocess.Popen(cmd, env=trainer_env, stdout=open(log, "a"),
                                                      stderr=subprocess.STDOUT), log))
        trainer, proc, log = running.pop(0)
        if proc.wait() != 0:
            failed.append(f"{trainer} (log {log})")
    if failed:
        raise SystemExit(f"error: run_benchmark.py failed for {', '.join(failed)}")


def benchmark_args(args) -> List[str]:
    """run_benchmark.py's arguments for every trainer of this call (--trainers comes after them)."""
    return ["-d", args.d, "-o", args.o, "-c", args.c, "-p", args.p, "--budget", "gpuShort",
            "--epochs", str(args.epochs), "--iterations", str(args.iterations), "--seeds", "0", "--no-report",
            "-device", args.device]


def score_snapshots(args, dataset: str, trainer: str) -> Dict[str, Dict]:
    """{steps: scores} of every snapshot of one trainer's model (in this process)."""
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    import bench_scoring
    from nnunetv2_tevia.prompts.dataset_cases import dataset_folder, load_dataset_json, test_case_ids
    from nnunetv2_tevia.prompts.prompt_file import load_prompts, resolve_prompt_path

    raw = dataset_folder(dataset)
    dataset_json, test_ids = load_dataset_json(raw), test_case_ids(raw)
    folder = model_folder(args, dataset, trainer)
    path = curve_scores_file(args, trainer)
    scores = json.load(open(path)) if os.path.isfile(path) else {}
    common = dict(tile_step_size=0.5, use_gaussian=True, use_mirroring=False, perform_everything_on_device=True,
                  device=torch.device(args.device), verbose=False, allow_tqdm=False)
    for steps in snapshot_steps(folder):
        if str(steps) in scores:
            continue
        if "TeViA" in trainer:
            from nnunetv2_tevia.inference.predictor import nnUNetTeViAPredictor

            predictor = nnUNetTeViAPredictor(**common, prompts=load_prompts(resolve_prompt_path(dataset, None)),
                                             text_cache_folder=os.path.join(args.o, "text_cache"))
        else:
            predictor = nnUNetPredictor(**common)
        predictor.initialize_from_trained_model_folder(os.path.dirname(folder), (args.fold,),
                                                       checkpoint_name=f"checkpoint_step{steps}.pth")
        out = os.path.join(args.o, "curve_predictions", budget_trainer(args, trainer), str(steps))
        os.makedirs(out, exist_ok=True)
        start = time.time()
        predictor.predict_from_files_sequential(os.path.join(raw, "imagesTs"), out, save_probabilities=False,
                                                overwrite=True)
        summary = bench_scoring.score_folder(out, os.path.join(raw, "labelsTs"), test_ids, dataset_json)
        scores[str(steps)] = dict(summary["mean_over_labels"], predict_seconds=round(time.time() - start, 1))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "w") as f:
            json.dump(scores, f, indent=1)
        os.replace(path + ".tmp", path)
        print(f"[{time.strftime('%X')}] {trainer} {steps} steps: per-case Dice "
              f"{scores[str(steps)]['per_case_dice']:.4f}, pooled {scores[str(steps)]['pooled_dice']:.4f}", flush=True)
    return scores


def write_curve(args, curves: Dict[str, Dict[str, Dict]]) -> None:
    from nnunetv2_tevia.io_utils import atomic_write_bytes, atomic_write_json

    atomic_write_json(os.path.join(args.o, "curve.json"), {"budget": budget_text(args), "curves": curves})
    lines = [f"# Learning curves: {budget_text(args)}", "",
             "Test Dice at each snapshot, predicted without mirroring (mean over cases of the per-case Dice; pooled "
             "over all pixels in brackets).", "",
             "| steps | " + " | ".join(f"`{t}`" for t in curves) + " |",
             "| --- |" + " --- |" * len(curves)]
    all_steps = sorted({int(s) for c in curves.values() for s in c})
    for steps in all_steps:
        cells = []
        for c in curves.values():
            s = c.get(str(steps))
            cells.append(f"{s['per_case_dice']:.4f} ({s['pooled_dice']:.4f})" if s else "")
        lines.append(f"| {steps} | " + " | ".join(cells) + " |")
    atomic_write_bytes(os.path.join(args.o, "curve.md"), ("\n".join(lines) + "\n").encode())

    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for trainer, c in curves.items():
        steps = sorted(c, key=int)
        for ax, key in zip(axes, ("per_case_dice", "pooled_dice")):
            ax.plot([int(s) for s in steps], [c[s][key] for s in steps], marker="o", ms=3, label=trainer)
    for ax, title in zip(axes, ("mean per-case Dice", "pooled Dice")):
        ax.set_title(title)
        ax.set_xlabel("training steps (batch 8)")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.suptitle(budget_text(args), fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(args.o, "curve.png"), dpi=110)
    plt.close(fig)


def budget_text(args) -> str:
    return (f"{args.d}, batch 8, {args.epochs} x {args.iterations} = {args.epochs * args.iterations} steps, "
            f"snapshot every {args.snapshot_every} epochs, device {args.device}")


def main(argv=None) -> None:
    import bench_trainers

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-d", required=True, help="[REQUIRED] dataset id or name (planned, preprocessed, embedded, with "
                                             "a labelled imagesTs / labelsTs)")
    p.add_argument("-o", required=True, help="[REQUIRED] output folder")
    p.add_argument("-c", default="2d", help="[OPTIONAL] configuration. Default: 2d")
    p.add_argument("-p", default="nnUNetPlans", help="[OPTIONAL] plans identifier. Default: nnUNetPlans")
    p.add_argument("--trainers", nargs="+", default=list(DEFAULT_TRAINERS),
                   help=f"[OPTIONAL] Default: {' '.join(DEFAULT_TRAINERS)}")
    p.add_argument("--epochs", type=int, default=bench_trainers.GPU_SHORT_EPOCHS,
                   help=f"[OPTIONAL] Default: {bench_trainers.GPU_SHORT_EPOCHS}")
    p.add_argument("--iterations", type=int, default=bench_trainers.GPU_SHORT_ITERATIONS,
                   help=f"[OPTIONAL] iterations per epoch. Default: {bench_trainers.GPU_SHORT_ITERATIONS}")
    p.add_argument("--snapshot-every", type=int, default=8, help="[OPTIONAL] epochs between snapshots. Default: 8")
    p.add_argument("-device", default="cuda", choices=("cpu", "cuda"), help="[OPTIONAL] Default: cuda")
    p.add_argument("--parallel", type=int, default=None,
                   help="[OPTIONAL] trainings at once. Default: all of them on cuda (they share the GPU), 1 on cpu "
                        "(on a few cores parallel trainings only fight over them)")
    p.add_argument("--report-only", action="store_true",
                   help="[OPTIONAL] train and predict nothing: rewrite the tables from what is there")
    p.add_argument("--score-one", help=argparse.SUPPRESS)  # internal: score one trainer's snapshots
    args = p.parse_args(argv)
    if args.parallel is None:
        args.parallel = default_parallel(args.device, len(args.trainers))

    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    dataset = maybe_convert_to_dataset_name(args.d)
    os.makedirs(args.o, exist_ok=True)
    # registered here too: the snapshots are scored in this script's own processes
    env = bench_trainers.registered_env(tool_env(**{bench_trainers.SNAPSHOT_ENV: str(args.snapshot_every)}))
    os.environ.update(env)
    if not args.report_only and not args.score_one:
        train_all(args, env)
    results = os.path.join(args.o, "results.json")
    if not os.path.isfile(results):
        raise SystemExit(f"error: {results} does not exist: nothing has been trained into {args.o} yet")
    args.fold = json.load(open(results))["config"]["fold"]  # the benchmark fold that run_benchmark.py chose
    if args.score_one:
        score_snapshots(args, dataset, args.score_one)
        return
    if not args.report_only:
        for trainer in args.trainers:  # one process each: every predictor starts from a clean slate
            cmd = [sys.executable, os.path.abspath(__file__), *(argv if argv is not None else sys.argv[1:]),
                   "--score-one", trainer]
            if subprocess.run(cmd, env=env).returncode != 0:
                raise SystemExit(f"error: scoring the snapshots of {trainer} failed")
    curves = {}
    for trainer in args.trainers:
        path = curve_scores_file(args, trainer)
        if os.path.isfile(path):
            curves[trainer] = json.load(open(path))
    write_curve(args, curves)
    subprocess.run([sys.executable, os.path.join(HERE, "run_benchmark.py"), *benchmark_args(args), "--trainers",
                    *args.trainers, "--report-only"], env=env, check=True)
    print(f"wrote {os.path.join(args.o, 'curve.md')}, curve.json, curve.png and results.md")


if __name__ == "__main__":
    main()
