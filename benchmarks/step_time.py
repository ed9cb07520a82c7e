"""Seconds per training step of the benchmark's trainers, to size a budget on this machine.

Builds each ``<Trainer>_cpuBudget`` (batch 8; benchmarks/trainers/bench_trainers.py) on a preprocessed dataset, in
this process and without data-augmentation workers, and times (1) producing one augmented batch and (2)
``train_step`` on one fixed batch (forward, loss, backward, optimiser step; for TeViA also the alignment loss and the
prototype update).
Both wall time and this process's CPU time are reported: on a machine shared with other jobs the wall time
grows with the load, the CPU time much less (with one torch thread, CPU time is about the wall time of a quiet
machine). Nothing is written outside a temporary nnUNet_results.

    python benchmarks/step_time.py -d 501 --trainers nnUNetTrainer nnUNetTrainerTeViA --threads 1 2
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "trainers"))
import bench_trainers  # noqa: E402  (the budget trainers, benchmarks/trainers)


def time_trainer(name: str, dataset: str, configuration: str, fold: int, steps: int, threads: int) -> dict:
    import torch
    from nnunetv2.run.run_training import get_trainer_from_args

    torch.set_num_threads(threads)
    budget = bench_trainers.make_budget(name, "cpu")
    trainer = get_trainer_from_args(str(dataset), configuration, fold, budget.trainer, device=torch.device("cpu"))
    trainer.initialize()
    dl_train, _ = trainer.get_dataloaders()
    t0 = time.perf_counter()
    batches = [next(dl_train) for _ in range(3)]
    augmentation = (time.perf_counter() - t0) / 3
    trainer.network.train()
    trainer.train_step(batches[0])  # first call: allocations and kernel selection
    wall, cpu = [], []
    for i in range(steps):
        w, c = time.perf_counter(), time.process_time()
        trainer.train_step(batches[i % len(batches)])
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return {"trainer": budget.trainer, "threads": threads, "batch": trainer.batch_size,
            "patch": list(trainer.configuration_manager.patch_size), "augmentation_s_per_batch": augmentation,
            "wall_s_per_step": float(np.median(wall)), "cpu_s_per_step": float(np.median(cpu))}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-d", required=True, help="[REQUIRED] preprocessed dataset id or name")
    p.add_argument("-c", default="2d", help="[OPTIONAL] configuration. Default: 2d")
    p.add_argument("-f", type=int, default=0, help="[OPTIONAL] fold whose training cases feed the batches. Default: 0")
    p.add_argument("--trainers", nargs="+", default=["nnUNetTrainer", "nnUNetTrainerTeViA"],
                   help="[OPTIONAL] base trainer names. Default: nnUNetTrainer nnUNetTrainerTeViA")
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="[OPTIONAL] torch threads. Default: 1 2")
    p.add_argument("--steps", type=int, default=5, help="[OPTIONAL] timed steps (median). Default: 5")
    args = p.parse_args()
    os.environ["nnUNet_n_proc_DA"] = "0"  # batches in this process: the timing is of the step alone
    os.environ["nnUNet_results"] = tempfile.mkdtemp(prefix="tevia_step_time_")
    os.environ.update(bench_trainers.registered_env())  # nnU-Net's trainer search, in this process
    print(f"load average before: {os.getloadavg()}")
    for name in args.trainers:
        for threads in args.threads:
            r = time_trainer(name, args.d, args.c, args.f, args.steps, threads)
            print(f"{r['trainer']}: batch {r['batch']} x {'x'.join(map(str, r['patch']))}, {threads} thread(s): "
                  f"train_step {r['wall_s_per_step']:.2f} s wall, {r['cpu_s_per_step']:.2f} s CPU; one augmented "
                  f"batch {r['augmentation_s_per_batch']:.2f} s wall", flush=True)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
