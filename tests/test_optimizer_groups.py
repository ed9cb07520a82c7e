"""The optimizer of the default design: nnU-Net's SGD for the U-Net, AdamW (fused where torch has it) for the
text pathway, and a poly schedule that keeps each parameter group's own base learning rate."""
import torch
from torch import nn

from nnunetv2_tevia.training.optimizer import PolyLRGroupScheduler, build_optimizer, poly_factor


def _net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4)))
    return net, net[1]


def _train(optimizer, net, steps=3):
    torch.manual_seed(1)
    for _ in range(steps):
        optimizer.zero_grad()
        x = torch.randn(2, 1, 5, 5)
        y = net[0](x).mean((2, 3))
        net[1](y).pow(2).sum().backward()
        optimizer.step()


def test_text_pathway_gets_adamw_with_decay_on_matrices_only_and_fused_matches_plain():
    net, text = _net()
    opt = build_optimizer(net, text, 0.01, 3e-5, "adamw", 3e-4, 0.01)
    sgd, adamw = opt.optimizers
    assert isinstance(sgd, torch.optim.SGD) and isinstance(adamw, torch.optim.AdamW)
    assert adamw.defaults["fused"] is True  # one kernel per tensor on the CPU, too
    decay, no_decay = adamw.param_groups
    assert [p.ndim for p in decay["params"]] == [2] and decay["weight_decay"] == 0.01
    assert all(p.ndim == 1 for p in no_decay["params"]) and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in sgd.param_groups[0]["params"]} == {id(p) for p in net[0].parameters()}

    _train(opt, net)
    reference, ref_text = _net()
    plain = torch.optim.AdamW([{"params": [ref_text[0].weight], "weight_decay": 0.01},
                               {"params": [ref_text[0].bias, *ref_text[1].parameters()], "weight_decay": 0.0}],
                              lr=3e-4)
    ref_opt = build_optimizer(reference, ref_text, 0.01, 3e-5, "adamw", 3e-4, 0.01)
    ref_opt.optimizers[1] = plain
    _train(ref_opt, reference)
    for a, b in zip(net.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_poly_schedule_keeps_each_groups_base_lr_and_survives_a_state_dict_round_trip():
    net, text = _net()
    opt = build_optimizer(net, text, 0.01, 3e-5, "adamw", 3e-4, 0.01)
    sched = PolyLRGroupScheduler(opt, max_steps=10)
    sched.step(5)
    assert [g["lr"] for g in opt.param_groups] == [0.01 * poly_factor(5, 10)] + [3e-4 * poly_factor(5, 10)] * 2
    _train(opt, net, 1)
    state = opt.state_dict()
    net2, text2 = _net()
    opt2 = build_optimizer(net2, text2, 0.01, 3e-5, "adamw", 3e-4, 0.01)
    opt2.load_state_dict(state)
    assert [g["initial_lr"] for g in opt2.param_groups] == [0.01, 3e-4, 3e-4]
    assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]
    assert len(opt2.optimizers[1].state) == 4  # AdamW's moments came back


def test_reference_design_uses_sgd_for_everything():
    net, text = _net()
    opt = build_optimizer(net, text, 0.01, 3e-5, None, 3e-4, 0.01)
    assert len(opt.optimizers) == 1 and isinstance(opt.optimizers[0], torch.optim.SGD)
    assert len(opt.param_groups[0]["params"]) == len(list(net.parameters()))
