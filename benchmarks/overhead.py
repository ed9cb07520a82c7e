"""TeViA's cost next to plain nnU-Net: seconds per training step, peak memory, inference seconds per case.

    python benchmarks/overhead.py                          # CPU: 2d, 3d_fullres and ResEnc M, synthetic data
    python benchmarks/overhead.py --device cuda            # GPU: nnU-Net's AMP training step
    python benchmarks/overhead.py --setups 2d --rounds 5   # one setup, more rounds

What it does:
  1. Writes small synthetic datasets with the demo generator (2D: --size-2d, 3D: --size-3d) into
     OUT/nnUNet_raw, and runs nnUNetv2_tevia_plan_and_preprocess on them with nnU-Net's default planner
     (2d, 3d_fullres) and with nnUNetPlannerResEncM (3d_fullres). Skipped when already done.
  2. Draws a fixed set of augmented training batches per setup (nnU-Net's own data loader, seeded) and saves
     them, so every trainer is timed on the very same batches.
  3. Measures each (setup, trainer) in a subprocess of its own, interleaved A B A B ... for --rounds rounds
     after --warmup-rounds discarded rounds. A subprocess builds the trainer as nnUNetv2_train does,
     runs --warmup-steps untimed steps, then times --steps calls of the trainer's own ``train_step`` (forward,
     loss, backward, optimiser step; for TeViA also the alignment loss and the prototype update; under AMP
     on CUDA). Then it predicts --cases-inference preprocessed cases with nnU-Net's sliding window
     (mirroring off for both, so both do the same work; TeViA's own default is also no mirroring).
  4. Reports per setup the medians over rounds and the ratios TeViA / nnU-Net, with the spread of the
     per-round ratios, as a markdown table (also written to OUT/overhead.md) and OUT/overhead.json.

Memory: on CPU the peak resident set size of the subprocess (what the operating system must provide; it
includes the ~1 GB of imported libraries, identical for both) and its growth during the timed steps; on CUDA
``torch.cuda.max_memory_allocated`` during the timed steps. Where the cost goes: after the timed steps, two
forward passes on one batch are timed with hooks around the guided stages (text projections, self- and
cross-attention), reported as their share of the forward; and the forward FLOPs of one patch are counted for
the plain and the guided network (``FlopCounterMode`` on the meta device). Add ``--trainers nnUNetTrainer
nnUNetTrainerTeViA nnUNetTrainerTeViA_noAlign nnUNetTrainerTeViA_noProto`` to see what the alignment loss and
the prototype cost. ``--flops-only`` counts FLOPs without training. Results: docs/performance.md.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_measure  # noqa: E402  (sibling module of this script)
from nnunetv2_tevia.cli.tool_path import tool_env  # noqa: E402


@dataclass(frozen=True)
class Setup:
    name: str
    three_d: bool
    configuration: str
    plans: str
    planner: Optional[str] = None  # nnU-Net's -pl; None: the default ExperimentPlanner


SETUPS = {
    "2d": Setup("2d", False, "2d", "nnUNetPlans"),
    "3d_fullres": Setup("3d_fullres", True, "3d_fullres", "nnUNetPlans"),
    "resenc_m_3d_fullres": Setup("resenc_m_3d_fullres", True, "3d_fullres", "nnUNetResEncUNetMPlans",
                                 "nnUNetPlannerResEncM"),
}
DATASET_IDS = {False: 971, True: 972}
BASELINE = "nnUNetTrainer"


def dataset_name(three_d: bool) -> str:
    return f"Dataset{DATASET_IDS[three_d]:03d}_TeViAOverhead{'3D' if three_d else '2D'}"


def nnunet_env(out: str) -> Dict[str, str]:
    return {"nnUNet_raw": os.path.join(out, "nnUNet_raw"),
            "nnUNet_preprocessed": os.path.join(out, "nnUNet_preprocessed"),
            "nnUNet_results": os.path.join(out, "nnUNet_results"),
            "nnUNet_compile": os.environ.get("nnUNet_compile", "false"), "HF_HUB_OFFLINE": "1"}


# batches are drawn in-process and beforehand: no augmentation workers while timing. (Not for planning:
# nnU-Net's planner calls torch.set_num_threads(nnUNet_n_proc_DA), which fails on 0.)
WORKER_ENV = {"nnUNet_n_proc_DA": "0"}


# ---------------------------------------------------------------------------------------------- preparation
def prepare(args, env: Dict[str, str]) -> None:
    from nnunetv2_tevia.demo.generator import generate_demo_dataset

    os.makedirs(os.path.join(args.out, "logs"), exist_ok=True)
    for setup in (SETUPS[s] for s in args.setups):
        name = dataset_name(setup.three_d)
        raw = os.path.join(env["nnUNet_raw"], name)
        if not os.path.isfile(os.path.join(raw, "dataset.json")):
            size = args.size_3d if setup.three_d else args.size_2d
            generate_demo_dataset(env["nnUNet_raw"], dataset_id=DATASET_IDS[setup.three_d], name=name.split("_", 1)[1],
                                  num_train=args.cases_3d if setup.three_d else args.cases_2d, num_test=0, size=size, three_d=setup.three_d, seed=0,
                                  overwrite=True)
        if not is_preprocessed(os.path.join(env["nnUNet_preprocessed"], name), setup):
            cmd = ["nnUNetv2_tevia_plan_and_preprocess", "-d", str(DATASET_IDS[setup.three_d]),
                   "-c", setup.configuration, "-np", "2"]
            if setup.planner:
                cmd += ["-pl", setup.planner]
            if args.text_encoder:
                cmd += ["-e", args.text_encoder]
            log = os.path.join(args.out, "logs", f"plan_{setup.name}.log")
            print(f"$ {' '.join(cmd)}   (log: {log})", flush=True)
            with open(log, "w") as f:
                if subprocess.run(cmd, env=tool_env(**env), stdout=f, stderr=subprocess.STDOUT).returncode:
                    raise SystemExit(f"error: planning and preprocessing for {setup.name} failed; see {log}")
        batches = batches_file(args.out, setup, args.batch_size)
        if not args.flops_only and not os.path.isfile(batches):
            log = os.path.join(args.out, "logs", f"batches_{setup.name}.log")
            with open(log, "w") as f:
                cmd = [sys.executable, __file__, "--worker", "batches", "--setup", setup.name, "-o", args.out,
                       "--steps", str(args.batches), "--batch-size", str(args.batch_size)]
                if subprocess.run(cmd, env=tool_env(**env, **WORKER_ENV), stdout=f,
                                  stderr=subprocess.STDOUT).returncode:
                    raise SystemExit(f"error: drawing the batches of {setup.name} failed; see {log}")


def is_preprocessed(folder: str, setup: Setup) -> bool:
    """The setup's plans exist and so does its data folder (ResEnc plans reuse nnUNetPlans' data folder)."""
    plans_file = os.path.join(folder, setup.plans + ".json")
    if not os.path.isfile(plans_file):
        return False
    with open(plans_file) as f:
        configuration = json.load(f)["configurations"].get(setup.configuration, {})
    identifier = configuration.get("data_identifier", f"{setup.plans}_{setup.configuration}")
    return os.path.isdir(os.path.join(folder, identifier))


def batches_file(out: str, setup: Setup, batch_size: int) -> str:
    return os.path.join(out, "batches", f"{setup.name}_batch{batch_size or 'planned'}.pt")


def build_trainer(setup: Setup, trainer_name: str, device: str, batch_size: int = 0):
    import torch
    from nnunetv2.run.run_training import get_trainer_from_args

    trainer = get_trainer_from_args(dataset_name(setup.three_d), setup.configuration, 0, trainer_name,
                                    setup.plans, device=torch.device(device))
    if batch_size:
        # the trainer's own copy of the configuration, as the benchmark's _cpuBudget does; plans stay as planned
        trainer.configuration_manager.configuration["batch_size"] = batch_size
    trainer.initialize()
    return trainer


def draw_batches(setup: Setup, out: str, count: int, batch_size: int) -> None:
    import random

    import torch
    from nnunetv2_tevia.io_utils import atomic_torch_save

    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    trainer = build_trainer(setup, BASELINE, "cpu", batch_size)
    dl_train, _ = trainer.get_dataloaders()
    batches = [next(dl_train) for _ in range(count)]
    keep = [{"data": b["data"], "target": b["target"], "keys": list(b["keys"])} for b in batches]
    os.makedirs(os.path.dirname(batches_file(out, setup, batch_size)), exist_ok=True)
    atomic_torch_save(keep, batches_file(out, setup, batch_size))


# ---------------------------------------------------------------------------------------------- measuring
def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class GuidanceTimer:
    """Wall time of the guided stages' forwards (text projection + attention), via forward hooks."""

    def __init__(self, network, synchronize):
        self.seconds = 0.0
        self._start: Dict[int, float] = {}
        self._sync = synchronize
        self._handles = []
        stages = getattr(network, "guidance", [])
        for module in [m for s in stages for m in (s, s.text_projection)]:
            self._handles.append(module.register_forward_pre_hook(self._pre))
            self._handles.append(module.register_forward_hook(self._post))

    def _pre(self, module, _inputs):
        self._sync()
        self._start[id(module)] = time.perf_counter()

    def _post(self, module, _inputs, _output):
        self._sync()
        self.seconds += time.perf_counter() - self._start.pop(id(module))

    def remove(self):
        for h in self._handles:
            h.remove()


def measure(setup: Setup, trainer_name: str, out: str, device: str, warmup: int, steps: int,
            inference_cases: int, batch_size: int) -> Dict:
    import torch

    from nnunetv2_tevia.model.tevia_network import unwrap

    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    trainer = build_trainer(setup, trainer_name, device, batch_size)
    batches = torch.load(batches_file(out, setup, batch_size), weights_only=False)
    trainer.network.train()
    for i in range(warmup):
        trainer.train_step(batches[i % len(batches)])
    sync()
    rss_before = rss_mib()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(steps):
        sync()
        start = time.perf_counter()
        trainer.train_step(batches[(warmup + i) % len(batches)])
        sync()
        times.append(time.perf_counter() - start)
    peak_rss = peak_rss_mib()
    peak_gpu = torch.cuda.max_memory_allocated() / 2 ** 20 if cuda else None
    network = unwrap(trainer.network) if hasattr(trainer, "text_table") else trainer.network
    forward_s, guidance_s = forward_shares(trainer, network, batches[0], sync)
    result = {"setup": setup.name, "trainer": trainer_name, "device": device,
              "batch_size": trainer.batch_size, "patch_size": list(trainer.configuration_manager.patch_size),
              "seconds_per_step": float(np.median(times)), "step_times": times,
              "forward_share_of_step": forward_s / float(np.median(times)),
              "guidance_share_of_forward": guidance_s / forward_s,
              "rss_after_init_mib": rss_before, "peak_rss_mib": peak_rss, "peak_gpu_allocated_mib": peak_gpu}
    if hasattr(trainer, "text_table"):
        from nnunetv2_tevia.model.token_counts import guided_stage_token_counts
        result["guided_stage_tokens"] = guided_stage_token_counts(
            trainer.configuration_manager.patch_size, trainer.configuration_manager.pool_op_kernel_sizes,
            len(network.guidance), on_outputs=not network.guides_inputs)
        result["forward_flops"] = forward_flops(trainer)
    result["inference_seconds_per_case"] = time_inference(trainer, inference_cases, device, sync)
    return result


def forward_shares(trainer, network, batch: dict, sync, repeats: int = 2) -> tuple:
    """Seconds of a training-mode forward, and of the guided stages inside it (median of ``repeats``).

    Separate from the timed steps: the hooks synchronise around every guided stage, which would slow a GPU
    step and so must not touch the step times.
    """
    import torch

    timer = GuidanceTimer(network, sync)
    data = batch["data"].to(trainer.device)
    text = trainer._batch_text(batch["keys"], training=True) if hasattr(trainer, "text_table") else None
    forward, guidance = [], []
    cuda = trainer.device.type == "cuda"
    with torch.no_grad(), torch.autocast(trainer.device.type, enabled=cuda):  # as train_step runs it
        for _ in range(repeats):
            timer.seconds = 0.0
            sync()
            start = time.perf_counter()
            network(data) if text is None else network(data, *text)
            sync()
            forward.append(time.perf_counter() - start)
            guidance.append(timer.seconds)
    timer.remove()
    return float(np.median(forward)), float(np.median(guidance))


def forward_flops(trainer) -> Dict[str, float]:
    """Forward FLOPs of one patch (batch 1) for the plans' plain network and for the same network with TeViA's
    guidance, counted by torch's FlopCounterMode on the meta device (nothing is computed or allocated).
    Hardware-independent: the part of the cost that no kernel choice can remove."""
    import torch
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from torch.utils.flop_counter import FlopCounterMode

    args = (trainer.plans_manager, trainer.configuration_manager, trainer.num_input_channels,
            trainer.label_manager.num_segmentation_heads, False)
    patch = tuple(trainer.configuration_manager.patch_size)
    config = trainer.plans_manager.plans["tevia"]
    counts = {}
    with torch.device("meta"):
        for name, build in (("plain", nnUNetTrainer.build_network_architecture),
                            ("tevia", type(trainer).build_network_architecture)):
            net = build(*args)
            x = torch.empty(1, trainer.num_input_channels, *patch)
            inputs = (x,) if name == "plain" else \
                (x, torch.empty(1, config["text_tokens"], config["text_dim"]),
                 torch.ones(1, config["text_tokens"], dtype=torch.bool))
            with FlopCounterMode(display=False) as counter:
                net(*inputs)
            counts[name] = float(counter.get_total_flops())
    return {"plain_gflop": counts["plain"] / 1e9, "tevia_gflop": counts["tevia"] / 1e9,
            "flop_ratio": counts["tevia"] / counts["plain"]}


def flops_of_setup(setup: Setup) -> Dict:
    from nnunetv2_tevia.model.token_counts import guided_stage_token_counts
    from nnunetv2_tevia.model.tevia_network import unwrap

    trainer = build_trainer(setup, "nnUNetTrainerTeViA", "cpu")
    cm = trainer.configuration_manager
    network = unwrap(trainer.network)
    stages = network.guided_stages
    return {"setup": setup.name, "patch_size": list(cm.patch_size), "batch_size": cm.batch_size,
            "guided_stage_tokens": guided_stage_token_counts(cm.patch_size, cm.pool_op_kernel_sizes, len(stages),
                                                             on_outputs=not network.guides_inputs),
            "guided_stage_channels": [s.channels for s in stages], "forward_flops": forward_flops(trainer)}


def flops_markdown(rows: List[Dict]) -> str:
    lines = ["| setup | patch (planned batch) | guided stages: tokens x channels | forward GFLOP per patch, plain -> "
             "TeViA (ratio) |", "|---|---|---|---|"]
    for r in rows:
        stages = ", ".join(f"{n} x {c}" for n, c in zip(r["guided_stage_tokens"], r["guided_stage_channels"]))
        lines.append(f"| {r['setup']} | {'x'.join(map(str, r['patch_size']))} ({r['batch_size']}) | {stages} | "
                     f"{flops_cell(r['forward_flops'])} |")
    return "\n".join(lines)


def time_inference(trainer, cases: int, device: str, sync) -> Optional[float]:
    """Sliding-window prediction of preprocessed training cases, mirroring off; median seconds per case."""
    if cases <= 0:
        return None

    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from nnunetv2_tevia.model.tevia_network import unwrap

    trainer.set_deep_supervision_enabled(False)
    trainer.network.eval()
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                                perform_everything_on_device=True, device=torch.device(device), verbose=False,
                                allow_tqdm=False)
    predictor.manual_initialization(trainer.network, trainer.plans_manager, trainer.configuration_manager, None,
                                    trainer.dataset_json, trainer.__class__.__name__, None)
    dataset = trainer.dataset_class(trainer.preprocessed_dataset_folder)
    keys = sorted(dataset.identifiers)[:cases + 1]
    seconds = []
    for i, key in enumerate(keys):
        data = torch.from_numpy(np.ascontiguousarray(dataset.load_case(key)[0][:]))
        if hasattr(trainer, "text_table"):  # nnU-Net's own predictor calls network(x): the case's text goes with it
            text = trainer._validation_text(key)
            predictor.network = _with_text(unwrap(trainer.network), text.features, text.mask)
        sync()
        start = time.perf_counter()
        predictor.predict_sliding_window_return_logits(data)
        sync()
        if i > 0:  # the first case pays for allocations and kernel selection
            seconds.append(time.perf_counter() - start)
    return float(np.median(seconds))


def _with_text(network, features, mask):
    """The network as nnU-Net's predictor calls it, network(x), with one case's text as its forward argument."""
    import torch

    class WithText(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.network = network

        def forward(self, x):
            return self.network(x, features, mask)

    return WithText()


# ---------------------------------------------------------------------------------------------- reporting
def summarise(runs: List[Dict], trainers: List[str]) -> Dict[str, Dict]:
    """Per setup: median per trainer over rounds, and TeViA-variant / nnUNetTrainer ratios with their spread.

    Ratios are taken within a round (A and B measured back to back), then summarised over rounds, so a load
    change between rounds moves both sides alike.
    """
    summary: Dict[str, Dict] = {}
    for setup in dict.fromkeys(r["setup"] for r in runs):
        rounds = sorted({r["round"] for r in runs if r["setup"] == setup})
        by = {(r["round"], r["trainer"]): r for r in runs if r["setup"] == setup}
        entry: Dict = {"trainers": {}, "rounds": len(rounds)}
        for t in trainers:
            mine = [by[(k, t)] for k in rounds if (k, t) in by]
            if not mine:
                continue
            row = {m: float(np.median([x[m] for x in mine])) for m in
                   ("seconds_per_step", "peak_rss_mib", "rss_after_init_mib", "forward_share_of_step",
                    "guidance_share_of_forward")}
            for m in ("peak_gpu_allocated_mib", "inference_seconds_per_case"):
                values = [x[m] for x in mine if x.get(m) is not None]
                row[m] = float(np.median(values)) if values else None
            row["batch_size"], row["patch_size"] = mine[0]["batch_size"], mine[0]["patch_size"]
            for key in ("guided_stage_tokens", "forward_flops"):
                if key in mine[0]:
                    row[key] = mine[0][key]
            if t != BASELINE:
                row["ratios"] = {}
                for m in ("seconds_per_step", "peak_rss_mib", "peak_gpu_allocated_mib", "inference_seconds_per_case"):
                    per_round = [by[(k, t)][m] / by[(k, BASELINE)][m] for k in rounds
                                 if (k, t) in by and (k, BASELINE) in by
                                 and by[(k, t)].get(m) is not None and by[(k, BASELINE)].get(m)]
                    if per_round:
                        row["ratios"][m] = {"median": float(np.median(per_round)), "min": float(min(per_round)),
                                            "max": float(max(per_round))}
            entry["trainers"][t] = row
        summary[setup] = entry
    return summary


def flops_cell(flops: Optional[Dict]) -> str:
    if not flops:
        return ""
    return f"{flops['plain_gflop']:.1f} -> {flops['tevia_gflop']:.1f} ({flops['flop_ratio']:.3f})"


def markdown(summary: Dict[str, Dict], machine: Dict, device: str) -> str:
    gpu = device.startswith("cuda")
    mem = "peak GPU MiB (max allocated)" if gpu else "peak RSS MiB"
    lines = [f"| setup | trainer | batch x patch | s / step | ratio | {mem} | ratio | RSS growth in steps MiB | "
             f"inference s / case | ratio | guided stages' share of forward time | forward GFLOP per patch, "
             f"plain -> TeViA (ratio) | tokens per guided stage |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def ratio(row, m):
        r = row.get("ratios", {}).get(m)
        return f"{r['median']:.2f} ({r['min']:.2f}-{r['max']:.2f})" if r else ""

    for setup, entry in summary.items():
        for t, row in entry["trainers"].items():
            memory = row["peak_gpu_allocated_mib"] if gpu else row["peak_rss_mib"]
            growth = "" if gpu else f"{row['peak_rss_mib'] - row['rss_after_init_mib']:.0f}"
            inference = row["inference_seconds_per_case"]
            share = f"{100 * row['guidance_share_of_forward']:.1f}%" if "guided_stage_tokens" in row else ""
            lines.append(
                f"| {setup} | `{t}` | {row['batch_size']} x {'x'.join(map(str, row['patch_size']))} | "
                f"{row['seconds_per_step']:.3f} | {ratio(row, 'seconds_per_step')} | {memory:.0f} | "
                f"{ratio(row, 'peak_gpu_allocated_mib' if gpu else 'peak_rss_mib')} | {growth} | "
                f"{'' if inference is None else f'{inference:.3f}'} | {ratio(row, 'inference_seconds_per_case')} | "
                f"{share} | {flops_cell(row.get('forward_flops'))} | "
                f"{', '.join(map(str, row.get('guided_stage_tokens', [])))} |")
    rounds = max(e["rounds"] for e in summary.values()) if summary else 0
    lines.append("")
    lines.append(f"Medians over {rounds} interleaved rounds; ratio = TeViA variant / nnUNetTrainer within a round, "
                 f"median (min-max over rounds). Machine: {machine.get('cpu')}, {machine.get('usable_cpus')} usable "
                 f"CPUs, torch {machine.get('torch')}, nnunetv2 {machine.get('nnunetv2')}"
                 f"{', GPU ' + str(machine.get('gpu')) if machine.get('gpu') else ''}; device {device}.")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main
def run_worker(args) -> None:
    setup = SETUPS[args.setup]
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    if args.worker == "batches":
        draw_batches(setup, args.out, args.steps, args.batch_size)
        return
    if args.worker == "flops":
        print("RESULT " + json.dumps(flops_of_setup(setup)), flush=True)
        return
    result = measure(setup, args.trainer, args.out, args.device, args.warmup_steps, args.steps, args.cases_inference,
                     args.batch_size)
    print("RESULT " + json.dumps(result), flush=True)


def run_worker_subprocess(args, env: Dict[str, str], worker_args: List[str], what: str) -> Dict:
    """This script as a worker in a fresh process (own memory high-water mark, nothing cached from other runs)."""
    cmd = [sys.executable, __file__, "-o", args.out, "--device", args.device] + worker_args
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    with tempfile.TemporaryDirectory(prefix="tevia_overhead_results_") as results:
        worker_env = dict(os.environ, **{**env, **WORKER_ENV, "nnUNet_results": results})
        proc = subprocess.run(cmd, env=worker_env, capture_output=True, text=True)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"error: {what} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def measure_in_subprocess(args, env: Dict[str, str], setup: str, trainer: str, steps: int, inference: int) -> Dict:
    return run_worker_subprocess(args, env, [
        "--worker", "measure", "--setup", setup, "--trainer", trainer, "--steps", str(steps),
        "--warmup-steps", str(args.warmup_steps), "--cases-inference", str(inference),
        "--batch-size", str(args.batch_size)], f"measuring {trainer} on {setup}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--out", default=os.path.join(tempfile.gettempdir(), "tevia_overhead"),
                   help="[OPTIONAL] work folder: datasets, batches, overhead.json, overhead.md. Default: "
                        "$TMPDIR/tevia_overhead")
    p.add_argument("--text-encoder", default=None,
                   help="[OPTIONAL] encoder for the synthetic reports (-e of nnUNetv2_tevia_plan_and_preprocess), e.g. "
                        "hf:/folder on a machine without the default encoder; only its hidden size matters for "
                        "the timing. Default: the default encoder")
    p.add_argument("--setups", nargs="+", default=list(SETUPS), choices=list(SETUPS),
                   help=f"[OPTIONAL] Default: {' '.join(SETUPS)}")
    p.add_argument("--trainers", nargs="+", default=[BASELINE, "nnUNetTrainerTeViA"],
                   help=f"[OPTIONAL] trainers; the first must be {BASELINE}. Default: {BASELINE} nnUNetTrainerTeViA")
    p.add_argument("--device", default="cpu", help="[OPTIONAL] cpu or cuda (cuda:N). Default: cpu")
    p.add_argument("--threads", type=int, default=0, help="[OPTIONAL] torch threads per subprocess; 0: torch's "
                                                           "default. Default: 0")
    p.add_argument("--rounds", type=int, default=3, help="[OPTIONAL] measured A B rounds. Default: 3")
    p.add_argument("--warmup-rounds", type=int, default=1,
                   help="[OPTIONAL] discarded rounds first (one step each, no inference). Default: 1")
    p.add_argument("--steps", type=int, default=8, help="[OPTIONAL] timed training steps per subprocess. Default: 8")
    p.add_argument("--warmup-steps", type=int, default=2, help="[OPTIONAL] untimed steps first. Default: 2")
    p.add_argument("--cases-inference", type=int, default=3,
                   help="[OPTIONAL] cases predicted per subprocess (plus one untimed). Default: 3")
    # nnU-Net caps the batch at 5% of the dataset's voxels: 240 2D cases let the planner pick its usual 2D batch
    p.add_argument("--cases-2d", type=int, default=240, help="[OPTIONAL] synthetic 2D training cases. Default: 240")
    p.add_argument("--cases-3d", type=int, default=12, help="[OPTIONAL] synthetic 3D training cases. Default: 12")
    p.add_argument("--batch-size", type=int, default=0,
                   help="[OPTIONAL] batch size for every setup and trainer instead of the plans' (the plans are not "
                        "edited); 0: the plans'. On a CPU, 2 keeps a run short. Default: 0")
    p.add_argument("--batches", type=int, default=4, help="[OPTIONAL] distinct saved batches. Default: 4")
    p.add_argument("--size-2d", type=int, default=256, help="[OPTIONAL] 2D image edge. Default: 256")
    p.add_argument("--size-3d", type=int, default=64, help="[OPTIONAL] 3D image edge. Default: 64")
    p.add_argument("--flops-only", action="store_true",
                   help="[OPTIONAL] only plan the setups and count forward FLOPs of the plain and the TeViA network "
                        "(meta device: no training, no timing; seconds per setup). With --size-3d 128: nnU-Net's "
                        "typical 128^3 3D patch")
    p.add_argument("--worker", choices=["batches", "measure", "flops"], help=argparse.SUPPRESS)
    p.add_argument("--setup", help=argparse.SUPPRESS)
    p.add_argument("--trainer", help=argparse.SUPPRESS)
    return p


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    args.out = os.path.abspath(args.out)
    if args.worker:
        run_worker(args)
        return
    if args.trainers[0] != BASELINE:
        raise SystemExit(f"error: the first of --trainers must be {BASELINE}, the baseline of every ratio")
    env = nnunet_env(args.out)
    os.makedirs(args.out, exist_ok=True)
    prepare(args, env)
    if args.flops_only:
        rows = [run_worker_subprocess(args, env, ["--worker", "flops", "--setup", s], f"counting FLOPs of {s}")
                for s in args.setups]
        table = flops_markdown(rows)
        from nnunetv2_tevia.io_utils import atomic_write_bytes
        atomic_write_bytes(os.path.join(args.out, "flops.md"), (table + "\n").encode())
        print(table)
        print(f"written: {os.path.join(args.out, 'flops.md')}")
        return
    machine = bench_measure.machine_info(args.device)
    runs = []
    started = time.time()
    for r in range(-args.warmup_rounds, args.rounds):
        for setup in args.setups:
            for trainer in args.trainers:
                warm = r < 0
                result = measure_in_subprocess(args, env, setup, trainer, 1 if warm else args.steps,
                                               0 if warm else args.cases_inference)
                result.update(round=r, load_average=bench_measure.load_average())
                print(f"round {r}{' (warm-up)' if warm else ''}: {setup} {trainer}: "
                      f"{result['seconds_per_step']:.3f} s/step, peak RSS {result['peak_rss_mib']:.0f} MiB", flush=True)
                if not warm:
                    runs.append(result)
    summary = summarise(runs, args.trainers)
    table = markdown(summary, machine, args.device)
    report = {"machine": machine, "settings": {k: v for k, v in vars(args).items() if k not in ("worker", "setup",
                                                                                             "trainer")},
              "seconds": round(time.time() - started, 1), "summary": summary, "runs": runs}
    from nnunetv2_tevia.io_utils import atomic_write_bytes, atomic_write_json
    atomic_write_json(os.path.join(args.out, "overhead.json"), report)
    atomic_write_bytes(os.path.join(args.out, "overhead.md"), (table + "\n").encode())
    print(table)
    print(f"written: {os.path.join(args.out, 'overhead.json')}, {os.path.join(args.out, 'overhead.md')}")


if __name__ == "__main__":
    main()
