"""How many tokens each guided stage attends over, from a patch size and the plans' strides.

In the default design guided stage s works on the output of decoder stage s, which has the resolution of encoder
stage -(s + 2); in the reference design on its input, the output of encoder stage -(s + 1). Either is the patch
divided by the product of all strides up to that encoder stage. Cross-attention costs O(N L_s C) for N tokens and
the reference's self-attention O(N^2 C), so these counts say what a configuration costs and why only the
low-resolution stages are guided (docs/performance.md).
"""
import math
from typing import List, Sequence


def guided_stage_shapes(patch_size: Sequence[int], strides: Sequence[Sequence[int]],
                        num_guided_stages: int, on_outputs: bool = True) -> List[List[int]]:
    """Spatial shape of the map at each guided stage, lowest resolution first; ``on_outputs``: the default
    design (outputs of the decoder stages), else the reference's (their inputs).

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
    offset = 2 if on_outputs else 1
    return [per_stage[-(s + offset)] for s in range(num)]


def guided_stage_token_counts(patch_size: Sequence[int], strides: Sequence[Sequence[int]],
                              num_guided_stages: int, on_outputs: bool = True) -> List[int]:
    """Tokens N per guided stage, lowest resolution first."""
    return [math.prod(s) for s in guided_stage_shapes(patch_size, strides, num_guided_stages, on_outputs)]
