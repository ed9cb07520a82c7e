"""Where a patch lies in its image: the boxes the training loader records, the boxes of sliding-window tiles, and
what the network does with them (the positions its queries see are the image's, not the patch's)."""
import numpy as np
import pytest
import torch
from nnunetv2.utilities.label_handling.label_handling import LabelManager

from nnunetv2_tevia import nnunet_seam as seam
from nnunetv2_tevia.inference.tile_positions import tile_box
from nnunetv2_tevia.model.positional_encoding import sinusoidal_encoding_nd
from nnunetv2_tevia.training.patch_position import PatchBoxLoader, patch_boxes
from test_model import make_net, rand_text  # tests/ is on sys.path (pytest rootdir import mode)


def test_encoding_of_a_box_is_the_images_encoding_at_those_positions():
    image = sinusoidal_encoding_nd((7, 11), 10)  # positions 0, 1/6, ... and 0, 1/10, ...
    patch = sinusoidal_encoding_nd((4, 6), 10, box=torch.tensor([[[0.0, 0.5], [0.5, 1.0]]]))
    rows, cols = np.meshgrid(np.arange(4), np.arange(5, 11), indexing="ij")
    torch.testing.assert_close(patch[0], image[torch.from_numpy((rows * 11 + cols).ravel())])
    whole = sinusoidal_encoding_nd((4, 6), 10, box=torch.tensor([[[0.0, 1.0], [0.0, 1.0]]] * 2))
    torch.testing.assert_close(whole, sinusoidal_encoding_nd((4, 6), 10).expand(2, -1, -1))


def test_patch_boxes_exact():
    # a 3D case of shape (11, 21, 5); the loader drew the box [2, 8) x [0, 10) x [-2, 4) for a final patch of 4 x 8 x 6
    boxes = patch_boxes([((2, 0, -2), (8, 10, 4), (11, 21, 5))], (4, 8, 6))
    centre = np.array([4.5, 4.5, 0.5])
    expected = np.stack(((centre - [1.5, 3.5, 2.5]) / [10, 20, 4], (centre + [1.5, 3.5, 2.5]) / [10, 20, 4]), 1)
    np.testing.assert_allclose(boxes[0].numpy(), expected, rtol=1e-6)
    # a patch that covers its image exactly is [0, 1] on every axis
    np.testing.assert_allclose(patch_boxes([((0, 0), (64, 64), (64, 64))], (64, 64))[0].numpy(), [[0, 1], [0, 1]])


class _Cases:
    """The two things nnU-Net's loader asks of a dataset: identifiers and load_case."""
    identifiers = ["a", "b"]

    def load_case(self, key):
        shape = (1, 1, 40, 24) if key == "a" else (1, 1, 24, 40)  # 2D cases, stored as (c, 1, x, y)
        seg = np.zeros(shape, np.int16)
        seg[0, 0, 5:9, 5:9] = 1
        return np.random.rand(*shape).astype(np.float32), seg, None, {"class_locations": {1: np.argwhere(seg)}}


def test_training_loader_adds_each_patchs_box():
    labels = LabelManager({"background": 0, "lesion": 1}, regions_class_order=None)
    loader = PatchBoxLoader(_Cases(), 6, (16, 16), (16, 16), labels, oversample_foreground_percent=0.5)
    batch = next(loader)
    assert batch["data"].shape == (6, 1, 16, 16)
    boxes = batch["patch_box"]
    assert boxes.shape == (6, 2, 2)  # 2D: the singleton axis of nnU-Net's pseudo-3D loading is dropped
    extent = boxes[..., 1] - boxes[..., 0]
    for b, key in enumerate(batch["keys"]):
        shape = (40, 24) if key == "a" else (24, 40)
        torch.testing.assert_close(extent[b], torch.tensor([15 / (shape[0] - 1), 15 / (shape[1] - 1)]))


def test_tile_boxes_undo_padding_and_skip_the_slice_index():
    # a 2D configuration on a (3, 40, 20) volume padded to (3, 40, 32) for 32 x 32 tiles: 6 pixels of padding before
    slicers = [(slice(None), 1, slice(0, 32), slice(0, 32)), (slice(None), 1, slice(8, 40), slice(0, 32))]
    boxes = [tile_box(s, (3, 40, 32), (3, 40, 20)) for s in slicers]
    torch.testing.assert_close(boxes[0], torch.tensor([[0.0, 31 / 39], [-6 / 19, 25 / 19]]))
    torch.testing.assert_close(boxes[1], torch.tensor([[8 / 39, 1.0], [-6 / 19, 25 / 19]]))


def test_the_box_reaches_the_guided_stages_and_changes_the_output():
    _, net = make_net()
    net.eval()
    for g in net.guidance:
        g.gate.data.fill_(1.0)
    x = torch.randn(1, 1, 32, 32)
    text, mask = rand_text(1)
    plain = net(x, text, mask)[0]
    whole = torch.tensor([[[0.0, 1.0], [0.0, 1.0]]])
    torch.testing.assert_close(net(x, text, mask, patch_box=whole)[0], plain)  # [0, 1]: the patch is the image
    corner = torch.tensor([[[0.0, 0.5], [0.0, 0.5]]])
    moved = net(x, text, mask, patch_box=corner)[0]
    assert not torch.allclose(moved, plain)
    class Trainer:  # what nnU-Net's validation step calls as self.network(data)
        network = net

    trainer = Trainer()
    with seam.network_called_with(trainer, text=text, text_mask=mask, patch_box=corner[0]):
        torch.testing.assert_close(trainer.network(x)[0], moved)
        assert not any(torch.equal(v, corner) for v in net.state_dict().values())
    torch.testing.assert_close(net(x, text, mask)[0], plain)


@pytest.mark.parametrize("design", ["reference"])
def test_the_reference_design_ignores_boxes(design):
    _, net = make_net(design=design)
    net.eval()
    x = torch.randn(1, 1, 32, 32)
    text, mask = rand_text(1)
    torch.testing.assert_close(net(x, text, mask, patch_box=torch.tensor([[[0.0, 0.5], [0.0, 0.5]]]))[0],
                               net(x, text, mask)[0])
