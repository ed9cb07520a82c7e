"""The historic visual prototype (TeViA section 4), training side: what feeds it and the step that
updates it, with its one distributed reduction.

Per guided stage the prototype is a C_s vector. In the default design it is the stage's own features averaged
over the foreground (``stage_foreground_vectors``), so channel i of the prototype is channel i of the map it
modulates; in the reference design it is the alignment vector (``alignment.foreground_vectors``), a layout with
no channel correspondence to the stage. Either way it is the mean of the foreground vectors over the warm-up
epoch, then ``p = m * p + (1 - m) * batch_mean`` every training step (``model/prototype.py``). Batch means
are formed from (sum, count) so that they can be all-reduced across ranks exactly (a mean of per-rank means
would weight ranks with few foreground samples wrongly).
"""
from typing import List, Sequence, Tuple

import torch
import torch.distributed as dist
import torch.nn.functional as F


def stage_foreground_vectors(features: torch.Tensor, fg_mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """A guided stage's own foreground vector: the mean of its (detached) feature map (B, C, *S) over the
    foreground, with the full-resolution mask (B, 1, *S0) area-averaged to the map's grid as weights.

    Returns (B, C) vectors and a (B,) bool tensor, False where the sample has no foreground (vector 0).
    """
    ndim = features.ndim - 2
    weights = getattr(F, f"adaptive_avg_pool{ndim}d")(fg_mask.float(), features.shape[2:]).flatten(2)  # (B, 1, N)
    total = weights.sum(2)                                                                             # (B, 1)
    vectors = (features.detach().float().flatten(2) * weights).sum(2) / total.clamp_min(1e-12)
    return vectors, total[:, 0] > 0


def prototype_inputs(stages: Sequence, stage_features: Sequence[torch.Tensor], fg_mask: torch.Tensor,
                     alignment_vectors: Sequence[torch.Tensor], valid: torch.Tensor) -> Tuple[list, torch.Tensor]:
    """What each stage's prototype averages, and which samples have foreground: the stage's own foreground-pooled
    map (default design, ``prototype_space == "stage"``) or the alignment vectors (reference design)."""
    if stages and stages[0].prototype_space == "stage":
        pairs = [stage_foreground_vectors(f, fg_mask) for f in stage_features]
        return [p[0] for p in pairs], pairs[0][1]
    return list(alignment_vectors), valid


def foreground_sum_count(vectors: torch.Tensor, valid: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(sum over valid samples of vectors, number of valid samples), in float32."""
    w = valid.float()
    return (vectors.float() * w[:, None]).sum(0), w.sum()


def all_reduce_sum_count(total: torch.Tensor, count: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Sum (sum, count) over all ranks when a process group is running; identity otherwise.

    Every rank must call this every training step, also when its batch has no foreground
    (count 0), or the collective deadlocks.
    """
    if dist.is_available() and dist.is_initialized():
        packed = torch.cat((total, count.reshape(1)))
        dist.all_reduce(packed, op=dist.ReduceOp.SUM)
        return packed[:-1], packed[-1]
    return total, count


@torch.no_grad()
def update_prototypes(stages: Sequence, vectors: Sequence[torch.Tensor], valid: torch.Tensor, *,
                      accumulate: bool, momentum: float) -> None:
    """One training step's prototype update of every guided stage (``GuidedStage`` objects).

    ``accumulate``: the warm-up epoch has been reached, so inactive prototypes collect (sum, count).
    Active prototypes take a momentum step. Every rank calls this every training step, also with no
    foreground in its batch: the all-reduce inside is a collective, and because all ranks add the same
    reduced numbers, their buffers stay identical without relying on DDP's buffer broadcast.
    """
    for stage, v in zip(stages, vectors):
        total, count = all_reduce_sum_count(*foreground_sum_count(v, valid))
        if bool(stage.prototype_active):
            stage.momentum_step(total, count, momentum)
        elif accumulate:
            stage.accumulate_prototype(total, count)


def activate_prototypes(stages: Sequence) -> List:
    """End of an epoch from the warm-up on: activate every prototype that has samples; returns those activated.

    Decided from the all-reduced count, so every rank activates the same stages in the same epoch.
    """
    return [s for s in stages if not bool(s.prototype_active) and s.activate_prototype()]
