"""Overlaying a plain nnU-Net state dict on a TeViA network (fine-tuning), on tiny CPU networks.

The end-to-end path (plans, text cache, nnUNetv2_train -pretrained_weights) is in test_training_e2e.py.
"""
import pytest
import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from nnunetv2.run.load_pretrained_weights import load_pretrained_weights

from nnunetv2_tevia.errors import TeViAError
from nnunetv2_tevia.model.config import TeViAConfig
from nnunetv2_tevia.model.tevia_network import TeViANetwork
from nnunetv2_tevia.training.pretrained import overlay_plain_weights


def plain_unet(seed: int, num_classes: int = 3, top_features: int = 24) -> PlainConvUNet:
    torch.manual_seed(seed)
    return PlainConvUNet(input_channels=1, n_stages=4, features_per_stage=(4, 8, 16, top_features),
                         conv_op=torch.nn.Conv2d, kernel_sizes=3, strides=(1, 2, 2, 2), n_conv_per_stage=1,
                         num_classes=num_classes, n_conv_per_stage_decoder=1, conv_bias=True,
                         norm_op=torch.nn.InstanceNorm2d, norm_op_kwargs={"affine": True},
                         nonlin=torch.nn.LeakyReLU, deep_supervision=True)


def tevia(seed: int = 1) -> TeViANetwork:
    return TeViANetwork(plain_unet(seed), TeViAConfig(text_tokens=8, text_dim=16, num_guided_stages=2))


def test_every_plain_weight_lands_and_guided_stages_stay_fresh():
    plain, net = plain_unet(0).state_dict(), tevia()
    fresh = net.state_dict()
    out = overlay_plain_weights(fresh, plain, "plain.pth")
    assert set(out) == set(fresh)
    assert all(torch.equal(out[k], v) for k, v in plain.items())
    guided = [k for k in fresh if k.startswith("guidance.")]
    assert guided and all(torch.equal(out[k], fresh[k]) for k in guided)
    first_conv = "encoder.stages.0.0.convs.0.conv.weight"
    assert not torch.equal(fresh[first_conv], plain[first_conv])  # else the overlay check above proves nothing


def test_result_passes_nnunets_loader(tmp_path):
    plain, net = plain_unet(0).state_dict(), tevia()
    torch.save({"network_weights": plain}, tmp_path / "plain.pth")
    with pytest.raises(AssertionError, match="is missing in the pretrained model weights"):  # without expanding
        load_pretrained_weights(tevia(2), str(tmp_path / "plain.pth"))
    torch.save({"network_weights": overlay_plain_weights(net.state_dict(), plain, "plain.pth")},
               tmp_path / "expanded.pth")
    target = tevia(3)
    load_pretrained_weights(target, str(tmp_path / "expanded.pth"))
    state = target.state_dict()
    assert all(torch.equal(state[k], v) for k, v in plain.items() if ".seg_layers." not in k)


def test_other_label_set_keeps_fresh_segmentation_heads():
    plain = plain_unet(0, num_classes=5).state_dict()
    fresh = tevia().state_dict()
    out = overlay_plain_weights(fresh, plain, "plain.pth")
    seg = [k for k in fresh if ".seg_layers." in k]
    assert seg and all(torch.equal(out[k], fresh[k]) for k in seg)


def test_other_plans_are_refused_naming_the_weight():
    plain = plain_unet(0, top_features=32).state_dict()
    with pytest.raises(TeViAError, match=r"plain\.pth: weight 'encoder\.stages\.3\..*shape"):
        overlay_plain_weights(tevia().state_dict(), plain, "plain.pth")


def test_missing_and_unknown_weights_are_refused():
    fresh = tevia().state_dict()
    plain = plain_unet(0).state_dict()
    dropped = "decoder.stages.0.convs.0.conv.weight"
    with pytest.raises(TeViAError, match=f"lacks weight '{dropped}'"):
        overlay_plain_weights(fresh, {k: v for k, v in plain.items() if k != dropped}, "plain.pth")
    with pytest.raises(TeViAError, match="'module.extra' has no counterpart"):
        overlay_plain_weights(fresh, {**plain, "module.extra": torch.zeros(1)}, "plain.pth")
