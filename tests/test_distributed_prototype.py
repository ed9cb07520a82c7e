"""The prototype update under a real process group: two CPU ranks (gloo) against one process on the union.

Each rank gets different batches of different sizes, and in some steps one rank (or both) has no
foreground at all, as happens with nnU-Net's per-rank batches. The ranks run what the trainer runs per
training step (network forward, foreground vectors, ``update_prototypes``) and per epoch end
(``activate_prototypes``), once plainly and once wrapped in DDP (whose default ``broadcast_buffers``
copies rank 0's buffers at every forward). Their buffers must be identical across ranks and equal the
single-process result on the union of the batches: a mean of per-rank means, a rank that skips the
collective, or a rank-dependent activation would each fail this.
"""
import os
import socket
import sys
import time
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from dynamic_network_architectures.architectures.unet import PlainConvUNet

from nnunetv2_tevia.model.config import TeViAConfig
from nnunetv2_tevia.model.tevia_network import TeViANetwork
from nnunetv2_tevia.training.alignment import foreground_mask, foreground_vectors
from nnunetv2_tevia.training.prototype_updates import activate_prototypes, prototype_inputs, update_prototypes

WORLD = 2
L, D, SIZE = 6, 8, 32
WARMUP_EPOCH, EPOCHS, STEPS, MOMENTUM = 1, 3, 3, 0.9
BATCH = (3, 2)                      # nnU-Net gives ranks unequal batch sizes when they do not divide evenly
EMPTY = {(1, 1, 1), (2, 0, 0), (2, 0, 1), (0, 2, 0)}   # (epoch, step, rank) whose batch has no foreground
MODES = ("process_group", "ddp_broadcast_buffers")
BUFFERS = ("prototype", "prototype_sum", "prototype_count", "prototype_active")


def build_network() -> TeViANetwork:
    torch.manual_seed(0)
    base = PlainConvUNet(input_channels=1, n_stages=4, features_per_stage=(4, 8, 16, 24), conv_op=torch.nn.Conv2d,
                         kernel_sizes=3, strides=(1, 2, 2, 2), num_classes=2, n_conv_per_stage=1,
                         n_conv_per_stage_decoder=1, conv_bias=True, norm_op=torch.nn.InstanceNorm2d,
                         norm_op_kwargs={"affine": True}, nonlin=torch.nn.LeakyReLU, deep_supervision=True)
    return TeViANetwork(base, TeViAConfig(text_tokens=L, text_dim=D))


def rank_batch(epoch: int, step: int, rank: int):
    """The same batch for (epoch, step, rank) in every process: image, label map, text, text mask."""
    g = torch.Generator().manual_seed(1000 * epoch + 10 * step + rank)
    b = BATCH[rank]
    x = torch.randn(b, 1, SIZE, SIZE, generator=g)
    target = (torch.rand(b, 1, SIZE, SIZE, generator=g) > 0.7).float()
    target[0, :, : SIZE // 2] = 0          # foreground of unequal size per sample
    if (epoch, step, rank) in EMPTY:
        target.zero_()
    text = torch.randn(b, L, D, generator=g)
    return x, target, text, torch.ones(b, L, dtype=torch.bool)


def run_steps(net: torch.nn.Module, stages, batches_of) -> None:
    """The trainer's per-step and per-epoch prototype path (train_step + on_train_epoch_end)."""
    for epoch in range(EPOCHS):
        for step in range(STEPS):
            x, target, text, mask = batches_of(epoch, step)
            output, aux = net(x, text, mask, return_aux=True)
            # backward, so that DDP finishes its gradient reduction as in training (weights stay fixed,
            # which keeps every sample's features independent of how the samples are split over ranks)
            sum(o.mean() for o in output).backward()
            fg = foreground_mask(target, has_regions=False, ignore_label=None)
            pairs = [foreground_vectors(aux["features"], fg, s.channels) for s in stages]
            vectors, valid = prototype_inputs(stages, aux["stage_features"], fg, [p[0] for p in pairs], pairs[0][1])
            update_prototypes(stages, vectors, valid, accumulate=epoch >= WARMUP_EPOCH, momentum=MOMENTUM)
        if epoch >= WARMUP_EPOCH:
            activate_prototypes(stages)


def buffers(stages) -> dict:
    return {f"{i}.{k}": getattr(s, k).detach().clone() for i, s in enumerate(stages) for k in BUFFERS}


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    if sys.platform.startswith("linux"):
        # gloo otherwise picks the interface of the host name, which some containers cannot reach
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)
    # a rank that skipped the collective would make the other wait: fail in seconds, not hang
    dist.init_process_group("gloo", rank=rank, world_size=WORLD, timeout=timedelta(seconds=30))
    try:
        for mode in MODES:
            net = build_network()
            stages = net.guided_stages
            model = torch.nn.parallel.DistributedDataParallel(net) if mode == "ddp_broadcast_buffers" else net
            run_steps(model, stages, lambda e, s: rank_batch(e, s, rank))
            torch.save(buffers(stages), os.path.join(out_dir, f"{mode}_rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def union_batch(epoch: int, step: int):
    parts = [rank_batch(epoch, step, r) for r in range(WORLD)]
    return tuple(torch.cat(t) for t in zip(*parts))


@pytest.fixture(scope="module")
def single_process():
    assert not dist.is_initialized()
    torch.set_num_threads(1)
    net = build_network()
    run_steps(net, net.guided_stages, union_batch)
    return buffers(net.guided_stages)


def test_reference_run_covers_warmup_activation_and_momentum(single_process):
    for i in range(3):
        assert bool(single_process[f"{i}.prototype_active"])
        # foreground samples of the warm-up epoch only: 3 steps x 5 samples, minus rank 1's empty batch (2)
        assert single_process[f"{i}.prototype_count"].item() == 3 * sum(BATCH) - BATCH[1]
        mean = single_process[f"{i}.prototype_sum"] / single_process[f"{i}.prototype_count"]
        assert not torch.allclose(single_process[f"{i}.prototype"], mean)  # momentum steps moved it


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """Both modes in one pair of spawned processes (start-up dominates the run time)."""
    out = tmp_path_factory.mktemp("ranks")
    ctx = mp.start_processes(_worker, args=(free_port(), str(out)), nprocs=WORLD, join=False, start_method="spawn")
    deadline = time.monotonic() + 120
    while not ctx.join(timeout=5):  # raises with the worker's traceback if a rank failed
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("the ranks did not finish within 120 s")
    return {m: [torch.load(out / f"{m}_rank{r}.pt") for r in range(WORLD)] for m in MODES}


@pytest.mark.parametrize("mode", MODES)
def test_ranks_agree_and_equal_single_process_on_union(ranks, single_process, mode):
    per_rank = ranks[mode]
    assert per_rank[0].keys() == single_process.keys()
    for key, expected in single_process.items():
        assert torch.equal(per_rank[0][key], per_rank[1][key]), f"{key} differs between ranks"
        if expected.dtype == torch.bool:
            assert torch.equal(per_rank[0][key], expected), key
        else:
            torch.testing.assert_close(per_rank[0][key], expected, rtol=1e-5, atol=1e-6, msg=key)
