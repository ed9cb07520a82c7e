"""TeViAConfig's ablation switches (benchmarks/plain_loop_ablation.py reruns docs/architecture.md's departures table
with them): each undoes exactly the departure it names, and the defaults are the default design."""
import pytest
import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from torch import nn

from nnunetv2_tevia.model.config import TeViAConfig
from nnunetv2_tevia.model.guided_stage import GuidedStage
from nnunetv2_tevia.model.tevia_network import TeViANetwork

C, L, D, SLOTS = 8, 6, 12, 4


def stage(**switches) -> GuidedStage:
    torch.manual_seed(0)
    return GuidedStage(C, L, D, SLOTS, heads=2, sentence_key=True, **switches).eval()


def text(batch: int = 1, valid: int = L):
    torch.manual_seed(1)
    mask = torch.zeros(batch, L, dtype=torch.bool)
    mask[:, :valid] = True
    return torch.randn(batch, L, D) * 3 + 5, mask


def unet():
    return PlainConvUNet(1, 4, (8, 16, 16, 16), nn.Conv2d, 3, (1, 2, 2, 2), 1, 2, 1, True, nn.InstanceNorm2d,
                         {"affine": True}, nonlin=nn.LeakyReLU, deep_supervision=False)


def test_defaults_are_the_default_design_and_old_plans_read_as_it():
    old_plans = {"text_tokens": L, "text_dim": D, "design": "tevia", "text_reader": "conv", "sentence_key": True}
    config = TeViAConfig.from_dict(old_plans)
    assert (config.text_norms, config.null_key, config.slot_position, config.self_attention,
            config.guide_inputs) == (True, True, False, False, False)
    names = set(TeViANetwork(unet(), config).state_dict())
    assert any(n.endswith("null_key") for n in names)
    assert not any("self_attention" in n for n in names)


def test_no_text_norms_feeds_the_raw_features():
    normed, raw = stage(), stage(text_norms=False)
    assert sum(isinstance(m, nn.LayerNorm) for m in raw.text_projection.modules()) == 0
    assert sum(isinstance(m, nn.LayerNorm) for m in raw.sentence_projection.modules()) == 0
    keys = normed.project_text(*text())[:, 1:]
    # LayerNorm'd keys have mean 0 and variance 1 over channels (weight 1, bias 0 at init); raw ones do not
    assert torch.allclose(keys.mean(-1), torch.zeros(()), atol=1e-5)
    assert not torch.allclose(raw.project_text(*text())[:, 1:].mean(-1), torch.zeros(()), atol=1e-2)


def test_no_null_key_keeps_only_the_reports_keys():
    with_null, without = stage(), stage(null_key=False)
    assert with_null.project_text(*text()).shape[1] == SLOTS + 2  # null, slots, sentence
    keys = without.project_text(*text())
    assert keys.shape[1] == SLOTS + 1 and without.null_key is None
    assert without.key_names(keys.shape[1]) == [f"slot{i:02d}" for i in range(SLOTS)] + ["sentence"]


def test_slot_sinusoid_makes_the_key_order_matter():
    """Attention is invariant to permuting its keys together with their values; with a positional term on the keys
    (the reference's slot sinusoid) it no longer is."""
    x = torch.randn(1, C, 4, 4)
    keys = torch.randn(1, SLOTS + 2, C)
    perm = torch.tensor([0, 3, 1, 2, 5, 4])
    plain, positioned = stage(), stage(slot_position=True)
    positioned.load_state_dict(plain.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(plain(x, keys), plain(x, keys[:, perm]))
        assert not torch.allclose(positioned(x, keys), positioned(x, keys[:, perm]), atol=1e-4)
        assert not torch.allclose(positioned(x, keys), plain(x, keys), atol=1e-4)


def test_self_attention_lets_a_position_see_the_others():
    """Without it each position's output depends on its own features and the text only; with it, on other
    positions' features too."""
    x = torch.randn(1, C, 4, 4)
    changed = x.clone()
    changed[0, :, 3, 3] = torch.randn(C) * 3  # not a per-position constant: LayerNorm would remove that
    keys = torch.randn(1, SLOTS + 2, C)
    for switch, moves in ((False, False), (True, True)):
        s = stage(self_attention=switch)
        with torch.no_grad():
            a, b = s(x, keys), s(changed, keys)
        assert torch.allclose(a[0, :, 3, 3], b[0, :, 3, 3]) is False
        assert (not torch.allclose(a[0, :, 0, 0], b[0, :, 0, 0], atol=1e-6)) == moves, switch


def test_token_keys_keep_every_token_and_pad_to_one_vector():
    s = stage(text_reader="tokens")
    keys = s.project_text(*text(valid=3))
    assert keys.shape[1] == 1 + L + 1  # null, every token, sentence
    pads = keys[0, 1 + 3:1 + L]
    assert torch.allclose(pads, pads[:1].expand_as(pads))
    assert not torch.allclose(keys[0, 1], keys[0, 2])


@pytest.mark.parametrize("guide_inputs", [False, True])
def test_guide_inputs_moves_the_stages_to_the_decoder_inputs(guide_inputs):
    base = unet()
    config = TeViAConfig(text_tokens=L, text_dim=D, guide_inputs=guide_inputs)
    net = TeViANetwork(base, config)
    seen = []
    for g in net.guidance:
        g.register_forward_hook(lambda m, args, out: seen.append(tuple(args[0].shape[1:])))
    x = torch.randn(1, 1, 32, 32)
    net(x, *text())
    skips = net.encoder(x)
    if guide_inputs:  # stage s guides the bottleneck (s = 0) or decoder stage s - 1's output, before up-sampling
        expected = [tuple(skips[-1].shape[1:])] + [tuple(skips[-(s + 1)].shape[1:]) for s in range(1, 3)]
    else:             # stage s guides decoder stage s's output, at the resolution of skip -(s + 2)
        expected = [tuple(skips[-(s + 2)].shape[1:]) for s in range(3)]
    assert seen == expected
