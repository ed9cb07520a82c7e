"""How many tokens each guided stage attends over, from a patch size and the plans' strides.

Guided stage s works on the input of decoder stage s, which is the output of encoder stage -(s + 1): the
patch divided by the product of all strides up to that encoder stage. Self-attention there costs O(N^2 C)
and cross-attention O(N L_s C) for N tokens, so these counts say what a configuration costs and why only the
low-resolution stages are guided (docs/performance.md).
"""
import math
from typing import List, Sequence


def guided_stage_shapes(patch_size: Sequence[int], strides: Sequence[Sequence[int]],
                        num_guided_stages: int) -> List[List[int]]:
    """Spatial shape of the map at each guided stage, lowest resolution first.

    strides: one entry per encoder stage (nnU-Net's ``pool_op_kernel_sizes``, the first usually all ones),
    each an int or a per-axis sequence.
    """
    dim = len(patch_size)
    shape = [int(p) for p in patch_size]
    per_stage = []
    for stride in strides:
        stride = [int(stride)] * dim if isinstance(stride, (int, float)) else [int(s) for s in stride]
        shape = [math.ceil(p / s) for p, s in zip(shape, stride)]
        per_stage.append(list(shape))
    num = min(num_guided_stages, len(per_stage) - 1)  # the decoder has one stage fewer than the encoder
    return [per_stage[-(s + 1)] for s in range(num)]


def guided_stage_token_counts(patch_size: Sequence[int], strides: Sequence[Sequence[int]],
                              num_guided_stages: int) -> List[int]:
    """Tokens N per guided stage, lowest resolution first."""
    return [math.prod(s) for s in guided_stage_shapes(patch_size, strides, num_guided_stages)]
