"""The guided network, the alignment loss and the prototype maths, on tiny CPU shapes."""
import math

import pytest
import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet, ResidualEncoderUNet

from nnunetv2_tevia.errors import MissingTextError
from nnunetv2_tevia.model.config import TeViAConfig, default_slot_counts
from nnunetv2_tevia.model.guided_stage import GuidedStage
from nnunetv2_tevia.model.prototype import minmax_normalise, momentum_update
from nnunetv2_tevia.model.reference_stage import ReferenceGuidedStage
from nnunetv2_tevia.model.tevia_network import TeViANetwork
from nnunetv2_tevia.training.alignment import alignment_grid, alignment_loss, foreground_mask, foreground_vectors
from nnunetv2_tevia.training.prototype_updates import foreground_sum_count, stage_foreground_vectors

L, D = 8, 16


def make_base(kind: str, dim: int):
    conv = torch.nn.Conv2d if dim == 2 else torch.nn.Conv3d
    norm = torch.nn.InstanceNorm2d if dim == 2 else torch.nn.InstanceNorm3d
    common = dict(input_channels=1, n_stages=5, features_per_stage=(4, 8, 16, 16, 24), conv_op=conv,
                  kernel_sizes=3, strides=(1, 2, 2, 2, 2), num_classes=3, n_conv_per_stage_decoder=1,
                  conv_bias=True, norm_op=norm, norm_op_kwargs={"affine": True}, nonlin=torch.nn.LeakyReLU,
                  deep_supervision=True)
    if kind == "plain":
        return PlainConvUNet(n_conv_per_stage=1, **common)
    return ResidualEncoderUNet(n_blocks_per_stage=1, **common)


def make_net(kind="plain", dim=2, **cfg):
    torch.manual_seed(0)
    base = make_base(kind, dim)
    return base, TeViANetwork(base, TeViAConfig(text_tokens=L, text_dim=D, **cfg))


def rand_text(b):
    mask = torch.ones(b, L, dtype=torch.bool)
    mask[:, 5:] = False
    return torch.randn(b, L, D), mask


@pytest.mark.parametrize("design", ["tevia", "reference"])
@pytest.mark.parametrize("kind", ["plain", "resenc"])
@pytest.mark.parametrize("dim", [2, 3])
def test_forward_shapes_and_state_dict_superset(kind, dim, design):
    base, net = make_net(kind, dim, design=design)
    plain = {k: v.shape for k, v in base.state_dict().items()}
    mine = net.state_dict()
    assert all(k in mine and mine[k].shape == s for k, s in plain.items())
    extra = set(mine) - set(plain)
    assert extra and all(k.startswith(("guidance.", "no_report_text_")) for k in extra)
    buffers = 5 if design == "tevia" else 4  # the default design also has the prototype's weight
    assert sum("prototype" in k for k in mine) == buffers * 3

    x = torch.randn(2, 1, *([32] * dim))
    text, mask = rand_text(2)
    out, aux = net(x, text, mask, return_aux=True)
    assert [o.shape[2:] for o in out] == [torch.Size([32 // 2 ** i] * dim) for i in range(4)]
    assert aux["features"].shape == (2, 4, *([32] * dim))
    if design == "tevia":  # outputs of decoder stages 0-2; keys: the null key, L slots and the sentence key
        assert [f.shape[1:] for f in aux["stage_features"]] == [(16, *[4] * dim), (16, *[8] * dim), (8, *[16] * dim)]
        assert [t.shape for t in aux["projected_text"]] == [(2, L + 2, 16), (2, L + 2, 16), (2, L + 2, 8)]
    else:  # inputs of decoder stages 0-2; keys: the reference's slots
        assert [f.shape[1:] for f in aux["stage_features"]] == [(24, *[2] * dim), (16, *[4] * dim), (16, *[8] * dim)]
        assert [t.shape for t in aux["projected_text"]] == [(2, 8, 24), (2, 4, 16), (2, 3, 16)]
    assert [v.shape for v in aux["text_vectors"]] == [(2, f.shape[1]) for f in aux["stage_features"]]
    net.decoder.deep_supervision = False
    assert net(x, text, mask).shape == (2, 3, *([32] * dim))


@pytest.mark.parametrize("kind", ["plain", "resenc"])
@pytest.mark.parametrize("dim", [2, 3])
def test_unguided_network_equals_the_plain_unet_decoder(kind, dim):
    """With every gate at 0 the wrapper's decoder loop must give exactly UNetDecoder's output: the loop is a
    copy of dynamic-network-architectures' (to reach the stages in between), and this catches upstream changes."""
    base, net = make_net(kind, dim)
    for stage in net.guidance:
        stage.gate.data.zero_()
    for ds in (True, False):
        base.decoder.deep_supervision = net.decoder.deep_supervision = ds
        x = torch.randn(2, 1, *([32] * dim))
        plain = base(x)
        guided = net(x, *rand_text(2))
        for a, b in zip(plain if ds else [plain], guided if ds else [guided]):
            assert torch.equal(a, b)


def test_guided_stages_capped_by_decoder_depth():
    _, net = make_net(num_guided_stages=10)
    assert len(net.guidance) == 4
    assert default_slot_counts(24, 5) == [24, 12, 9, 4, 2]
    assert default_slot_counts(24, 3, "tevia") == [24, 24, 24]


def test_config_of_earlier_releases_is_the_reference_design():
    """plans.json and checkpoints written before the redesign have no "design": they hold the reference network."""
    old = {"text_tokens": 24, "text_dim": 384, "num_guided_stages": 3, "slots": [24, 12, 9], "initial_scale": 0.01}
    assert TeViAConfig.from_dict(old).design == "reference"
    assert TeViAConfig.from_dict(TeViAConfig(24, 384).to_dict()).design == "tevia"
    assert TeViAConfig(24, 384).initial_scale == 0.1 and TeViAConfig(24, 384, design="reference").initial_scale == 0.01
    with pytest.raises(ValueError, match="unknown TeViA design"):
        TeViAConfig(24, 384, design="other")


# plans["tevia"] as nnUNetTrainerTeViA wrote it before issue 19 (every field of TeViAConfig then): no text reader,
# no sentence key, no no-report training-case count, no ablation switches
PLANS_BEFORE_ISSUE_19 = {"text_tokens": L, "text_dim": D, "design": "tevia", "num_guided_stages": 2, "slots": [L, L],
                         "self_attention_heads": 1, "cross_attention_heads": 4, "initial_scale": 0.1,
                         "encoder": {"encoder_id": "hf:x"}, "no_report_text": "No report.", "text_dropout": 0.0,
                         "case_text": True, "patch_position": True, "mirror": None}


def test_config_defaults_are_the_shipped_design():
    """TeViAConfig() is the network nnUNetTrainerTeViA builds: sentence key, conv slots, text dropout 0.2."""
    config = TeViAConfig(L, D)
    assert (config.design, config.text_reader, config.sentence_key, config.text_dropout, config.case_text,
            config.patch_position, config.initial_scale) == ("tevia", "conv", True, 0.2, True, True, 0.1)
    assert config.serves_no_report
    assert all(s.sentence_projection is not None for s in make_net()[1].guided_stages)


def test_plans_written_before_a_field_existed_rebuild_the_network_they_were_trained_as():
    old = TeViAConfig.from_dict(PLANS_BEFORE_ISSUE_19)
    assert (old.sentence_key, old.text_reader, old.text_dropout, old.no_report_training_cases) == \
        (False, "conv", 0.0, 0)
    assert not old.serves_no_report and old.design == "tevia"
    assert TeViAConfig.from_dict({"text_tokens": L, "text_dim": D}).design == "reference"  # before the redesign
    torch.manual_seed(0)
    net = TeViANetwork(make_base("plain", 2), old)
    torch.manual_seed(0)
    then = TeViANetwork(make_base("plain", 2), TeViAConfig(L, D, num_guided_stages=2, slots=[L, L],
                                                          encoder={"encoder_id": "hf:x"}, no_report_text="No report.",
                                                          sentence_key=False, text_dropout=0.0))
    assert net.state_dict().keys() == then.state_dict().keys()
    assert not any("sentence_projection" in k for k in net.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), then.state_dict().values()))
    # what the trainer writes now holds every field, and reads back as written whatever the defaults
    written = TeViAConfig(L, D, sentence_key=False, text_dropout=0.0).to_dict()
    assert TeViAConfig.from_dict(written).to_dict() == written


def test_the_trainer_writes_the_config_defaults(tmp_path, monkeypatch):
    """What nnUNetTrainerTeViA writes into the plans is TeViAConfig's defaults (with its cache's encoder and
    no-report text): the trainer's settings start from them, so the two cannot drift apart."""
    import copy
    import types

    from test_attention_maps import _plans

    from nnunetv2_tevia.training.nnUNetTrainerTeViA import nnUNetTrainerTeViA

    monkeypatch.setenv("nnUNet_results", str(tmp_path / "res"))
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "pre"))
    plans = dict(copy.deepcopy(_plans(TeViAConfig(L, D))), dataset_name="Dataset996_Tiny", continue_training=False)
    dataset_json = {"channel_names": {"0": "gray"}, "labels": {"background": 0, "lesion": 1}, "numTraining": 3,
                    "file_ending": ".png"}
    trainer = nnUNetTrainerTeViA(plans, "2d", 0, dataset_json, torch.device("cpu"))
    cache = types.SimpleNamespace(max_tokens=L, dim=D, encoder_record=lambda: {"encoder_id": "hf:x"},
                                  no_report_text="No report.")
    written = trainer._network_config(cache, 0)
    expected = TeViAConfig(L, D, encoder={"encoder_id": "hf:x"}, no_report_text="No report.")
    expected.slots = expected.resolved_slots(3)
    assert written.to_dict() == expected.to_dict()


@pytest.mark.parametrize("design", ["tevia", "reference"])
def test_text_changes_output_and_padding_is_ignored(design):
    _, net = make_net(design=design)
    net.eval()
    for g in net.guidance:  # make the cross-attention matter at init
        g.gate.data.fill_(1.0)
    x = torch.randn(1, 1, 32, 32)
    text, mask = rand_text(1)
    a = net(x, text, mask)[0]
    b = net(x, torch.randn_like(text), mask)[0]
    assert not torch.allclose(a, b)
    padded = text.clone()
    padded[:, 5:] = 1e3  # garbage in padding positions must not matter
    assert torch.allclose(a, net(x, padded, mask)[0], atol=1e-5)


def test_missing_text_refused_unless_allowed():
    _, net = make_net()
    net.decoder.deep_supervision = False
    x = torch.randn(1, 1, 32, 32)
    with pytest.raises(MissingTextError, match="nnUNetv2_tevia_predict"):
        net(x)
    net.allow_no_report = True
    assert net(x).shape == (1, 3, 32, 32)
    text, mask = rand_text(1)
    y = net(torch.randn(3, 1, 32, 32), text, mask)  # one case's text for a batch of its tiles
    assert y.shape[0] == 3
    # a case's text is never state of the network
    assert not any(v.shape == text[0].shape and torch.equal(v, text[0]) for v in net.state_dict().values())


def test_alignment_grid_matches_reference():
    assert alignment_grid(768, 2) == (16, 3)
    assert alignment_grid(384, 2) == (8, 6)
    assert alignment_grid(192, 2) == (8, 3)
    assert alignment_grid(320, 3) == (4, 5)
    assert alignment_grid(7, 2) == (1, 7)


def test_foreground_mask_labels_regions_ignore():
    t = torch.tensor([[[[0, 1, 2, 3]]]])  # label 3 = ignore
    assert foreground_mask(t, False, 3).flatten().tolist() == [0, 1, 1, 0]
    assert foreground_mask(t, False, None).flatten().tolist() == [0, 1, 1, 1]
    regions = torch.tensor([[[[0, 1, 1, 0]], [[0, 0, 1, 1]], [[0, 0, 0, 1]]]])  # last channel: ignore
    assert foreground_mask(regions, True, 9).flatten().tolist() == [0, 1, 1, 0]


def test_foreground_vectors_exact_and_empty_excluded():
    feats = torch.arange(2 * 2 * 4 * 4, dtype=torch.float32).reshape(2, 2, 4, 4)
    fg = torch.zeros(2, 1, 4, 4)
    fg[0, 0, :2, :2] = 1  # sample 0: upper-left quadrant; sample 1: empty
    vec, valid = foreground_vectors(feats, fg, channels=8)  # grid 2x2, 2 channels
    assert valid.tolist() == [True, False]
    # cell (0,0) of sample 0: mean over the 2x2 block of each channel; other cells are 0
    ch0 = feats[0, 0, :2, :2].mean()
    ch1 = feats[0, 1, :2, :2].mean()
    assert torch.allclose(vec[0, :2], torch.stack([ch0, ch1]))
    assert torch.count_nonzero(vec[0, 2:]) == 0 and torch.count_nonzero(vec[1]) == 0


def test_alignment_loss_values_and_empty_batch():
    t = [torch.tensor([[1.0, 0.0], [0.0, 1.0]])]
    v = [torch.tensor([[1.0, 0.0], [1.0, 0.0]])]
    assert math.isclose(alignment_loss(t, v, torch.tensor([True, True])).item(), 0.5)
    assert math.isclose(alignment_loss(t, v, torch.tensor([True, False])).item(), 0.0)
    assert alignment_loss(t, v, torch.tensor([False, False])).item() == 0.0


@pytest.mark.parametrize("design", ["tevia", "reference"])
def test_alignment_gradient_reaches_only_text_projections_and_prompts(design):
    _, net = make_net(design=design)
    x = torch.randn(2, 1, 32, 32)
    text, mask = rand_text(2)
    _, aux = net(x, text, mask, return_aux=True)
    fg = torch.zeros(2, 1, 32, 32)
    fg[:, :, 4:12, 4:12] = 1
    vecs = [foreground_vectors(aux["features"], fg, g.channels)[0] for g in net.guidance]
    if design == "reference":
        for g in net.guidance:  # a non-zero prompt so that its gradient is not trivially zero through t * P
            g.text_projection.prompt.data.normal_()
    _, aux = net(x, text, mask, return_aux=True)
    loss = alignment_loss(aux["text_vectors"], vecs, torch.tensor([True, True]))
    loss.backward()
    for name, p in net.named_parameters():
        has_grad = p.grad is not None and p.grad.abs().sum() > 0
        # the text vector is the mean of the report's keys: the slots and the sentence key (docs/architecture.md)
        assert has_grad == (".text_projection." in name or ".sentence_projection." in name), name


def test_text_vector_leaves_out_the_null_key():
    keys = torch.tensor([[[9.0, 9], [1, 2], [3, 4], [5, 6]]])   # the null key, then three slots
    assert GuidedStage(2, 4, 8, 3).text_vector(keys).tolist() == [[3.0, 4.0]]
    # without a null key (an ablation) every key is the report's
    assert GuidedStage(2, 4, 8, 3, null_key=False).text_vector(keys).tolist() == [[4.5, 5.25]]


def test_stage_foreground_vectors_exact():
    feats = torch.arange(2 * 2 * 2 * 2, dtype=torch.float32).reshape(2, 2, 2, 2)  # (B, C, 2, 2)
    fg = torch.zeros(2, 1, 4, 4)
    fg[0, 0, :2, :2] = 1            # sample 0: exactly the upper-left cell of the 2x2 map
    fg[0, 0, 2:, 2:3] = 1           # and half of the lower-right cell (weight 0.5)
    vec, valid = stage_foreground_vectors(feats, fg)
    assert valid.tolist() == [True, False] and vec[1].abs().sum() == 0
    expected = (feats[0, :, 0, 0] * 1 + feats[0, :, 1, 1] * 0.5) / 1.5
    assert torch.allclose(vec[0], expected)


@pytest.mark.parametrize("make_stage", [lambda: GuidedStage(channels=4, text_tokens=L, text_dim=D, slots=2),
                                        lambda: ReferenceGuidedStage(channels=4, text_tokens=L, text_dim=D, slots=2)])
def test_prototype_mean_then_momentum_exact(make_stage):
    stage = make_stage()
    v1 = torch.tensor([[1.0, 2, 3, 4], [3, 2, 1, 0], [9, 9, 9, 9]])
    valid1 = torch.tensor([True, True, False])  # third sample has no foreground
    stage.accumulate_prototype(*foreground_sum_count(v1, valid1))
    stage.accumulate_prototype(*foreground_sum_count(torch.tensor([[2.0, 2, 2, 2]]), torch.tensor([True])))
    assert not stage.prototype_active
    assert stage.activate_prototype()
    assert torch.allclose(stage.prototype, torch.tensor([2.0, 2, 2, 2]))  # (1+3+2)/3, ...
    stage.momentum_step(*foreground_sum_count(torch.tensor([[12.0, 2, 2, 2]]), torch.tensor([True])), 0.99)
    assert torch.allclose(stage.prototype, torch.tensor([2.1, 2, 2, 2]))
    before = stage.prototype.clone()
    stage.momentum_step(*foreground_sum_count(torch.zeros(2, 4), torch.tensor([False, False])), 0.99)
    assert torch.equal(before, stage.prototype)  # an all-empty batch changes nothing
    assert torch.allclose(momentum_update(torch.ones(2), torch.zeros(2), 0.9), torch.full((2,), 0.9))
    assert torch.allclose(minmax_normalise(torch.tensor([1.0, 3.0, 2.0])), torch.tensor([0.0, 1.0, 0.5]))


def test_prototype_weight_ramps_after_activation_only():
    stage = GuidedStage(channels=4, text_tokens=L, text_dim=D, slots=2)
    stage.ramp_prototype(0.25)
    assert stage.prototype_weight.item() == 0  # not active: no ramp
    stage.accumulate_prototype(torch.ones(4), torch.tensor(1.0))
    stage.activate_prototype()
    for expected in (0.25, 0.5, 0.75, 1.0, 1.0):
        stage.ramp_prototype(0.25)
        assert stage.prototype_weight.item() == expected


def test_no_foreground_epoch_does_not_activate():
    stage = GuidedStage(channels=4, text_tokens=L, text_dim=D, slots=2)
    assert not stage.activate_prototype()
    assert not stage.prototype_active


@pytest.mark.parametrize("design", ["tevia", "reference"])
def test_prototype_modulates_attention_and_roundtrips(design):
    _, net = make_net(design=design)
    net.eval()
    x = torch.randn(1, 1, 32, 32)
    text, mask = rand_text(1)
    a = net(x, text, mask)[0]
    for g in net.guidance:
        g.prototype.copy_(torch.linspace(-1, 1, g.channels))
        g.prototype_active.fill_(True)
    if design == "tevia":
        assert torch.equal(net(x, text, mask)[0], a)  # weight 0 right after activation: switched on smoothly
        for g in net.guidance:
            g.prototype_weight.fill_(0.5)
    b = net(x, text, mask)[0]
    assert not torch.allclose(a, b)
    _, fresh = make_net(design=design)
    fresh.eval()
    fresh.load_state_dict(net.state_dict())
    assert torch.allclose(fresh(x, text, mask)[0], b)
    assert all(bool(g.prototype_active) for g in fresh.guidance)


def test_foreground_vectors_average_channel_groups():
    feats = torch.arange(4, dtype=torch.float32).view(1, 4, 1, 1).expand(1, 4, 2, 2).contiguous()
    fg = torch.ones(1, 1, 2, 2)
    vec, _ = foreground_vectors(feats, fg, channels=2)  # grid 1, channels 4 -> 2 by area averaging
    assert vec.tolist() == [[0.5, 2.5]]
