"""Cross-attention maps of one guided stage during the sliding window: where each text slot steered the network.

A guided stage's cross-attention gives, at every position of its (low-resolution) feature map, a softmax
over the report's slots. The recorder captures it in each tile's first, un-mirrored forward, upsamples it
to the tile and averages the tiles (and the folds of an ensemble) over the whole image, so the slots
still sum to 1 at every pixel. The maps live on the network's input grid: nnU-Net's preprocessed image
(cropped to the non-zero region, resampled to the plans' spacing, transposed), which for 2D PNG datasets
is the image itself.
"""
import io
import os
import textwrap
from collections import deque
from contextlib import contextmanager
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from nnunetv2_tevia.io_utils import atomic_write_bytes
from nnunetv2_tevia.model.guided_stage import GuidedStage


class AttentionMapRecorder:
    def __init__(self, stage: GuidedStage):
        self.stage = stage
        self._tiles: deque = deque()
        self._window_sum: Optional[torch.Tensor] = None
        self._window_count: Optional[torch.Tensor] = None
        self._case_sum: Optional[torch.Tensor] = None
        self._case_windows = 0

    # one case = one or more sliding windows (one per fold of an ensemble), each of one or more tiles
    def start_case(self) -> None:
        self._case_sum, self._case_windows = None, 0

    def start_window(self, padded_shape: Sequence[int], slicers) -> None:
        """``padded_shape``: spatial shape of the padded image; ``slicers``: nnU-Net's tile slicers, in order."""
        self._tiles = deque(slicers)
        self._window_sum = None
        self._window_count = torch.zeros(tuple(padded_shape))

    @contextmanager
    def tile(self):
        """Around one tile's prediction: keeps the maps of its first forward (nnU-Net runs the un-mirrored
        input first, then the mirrored ones for test-time augmentation)."""
        captured = []

        def keep_first(module: GuidedStage, inputs, output):
            if not captured:
                captured.append(module.cross_attention_maps())
                module.cross_attention.capture_weights = False  # mirrored forwards run on SDPA again

        self.stage.cross_attention.capture_weights = True
        handle = self.stage.register_forward_hook(keep_first)
        try:
            yield
        finally:
            handle.remove()
            self.stage.cross_attention.capture_weights = False
        self._add_tile(captured[0], self._tiles.popleft())

    def _add_tile(self, maps: torch.Tensor, slicer: Tuple) -> None:
        spatial = slicer[1:]  # slicer[0] is the channel axis; a 2D configuration has an int slice index first
        size = [s.stop - s.start for s in spatial if isinstance(s, slice)]
        up = F.interpolate(maps.float(), size=size, mode="bilinear" if len(size) == 2 else "trilinear",
                           align_corners=False)[0].cpu()
        if self._window_sum is None:
            self._window_sum = torch.zeros((up.shape[0], *self._window_count.shape))
        self._window_sum[(slice(None), *spatial)] += up
        self._window_count[spatial] += 1

    def end_window(self, image_shape: Sequence[int]) -> None:
        """Undo nnU-Net's padding of images smaller than the patch (acvl_utils.pad_nd_image: the content is
        centred, the odd voxel of padding goes after it) and add the window to the case."""
        if self._window_sum is None:
            return
        padded = self._window_count.shape
        crop = tuple(slice((p - s) // 2, (p - s) // 2 + s) for p, s in zip(padded, image_shape))
        maps = self._window_sum[(slice(None), *crop)] / self._window_count[crop].clamp_min(1)
        self._case_sum = maps if self._case_sum is None else self._case_sum + maps
        self._case_windows += 1
        self._window_sum = None

    def case_maps(self) -> Optional[np.ndarray]:
        """(L_s, *spatial) maps of the current case, averaged over its windows (folds)."""
        if self._case_sum is None:
            return None
        return (self._case_sum / self._case_windows).numpy()


def display_slice(volume: np.ndarray) -> np.ndarray:
    """The 2D picture of a (Z, Y, X) array: the only slice of a 2D image, the middle one of a 3D image."""
    return volume[volume.shape[0] // 2]


def save_attention_pngs(folder: str, case_id: str, image: np.ndarray, maps: np.ndarray, stage_index: int,
                        stage_shape: Sequence[int], key_names: Sequence[str], report: Optional[str] = None) -> list:
    """One PNG per key (a text slot or the null key; ``key_names`` from the stage): the image in grey with the
    key's attention as a heat map (one colour scale for all keys of the case, so they can be compared).
    ``image``: (Z, Y, X); ``maps``: (keys, Z, Y, X). Returns the files written."""
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    picture = display_slice(image).astype(np.float32)
    lo, hi = np.percentile(picture, (0.5, 99.5))
    slot_pictures = [display_slice(m) for m in maps]
    vmax = max(float(max(p.max() for p in slot_pictures)), 1e-6)
    case_folder = os.path.join(folder, case_id)
    written = []
    for name, heat in zip(key_names, slot_pictures):
        fig, ax = plt.subplots(figsize=(5, 5.6))
        ax.imshow(picture, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1)
        shown = ax.imshow(heat, cmap="jet", alpha=0.45, vmin=0, vmax=vmax)
        ax.set_axis_off()
        title = f"{case_id}: stage {stage_index} ({'x'.join(map(str, stage_shape))}), {name}"
        if report:
            title += "\n" + "\n".join(textwrap.wrap(report, 60)[:3])
        ax.set_title(title, fontsize=8)
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02, label="attention weight (keys sum to 1)")
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        path = os.path.join(case_folder, f"stage{stage_index}_{name.replace(' ', '')}.png")
        atomic_write_bytes(path, buffer.getvalue())
        written.append(path)
    return written
