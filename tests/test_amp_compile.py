"""The parts of the GPU path that a CPU can check: half-precision autocast with a grad scaler, and
torch.compile with per-case text set between calls (the predictor's way), as nnU-Net uses them on CUDA."""
import pytest
import torch
from test_model import make_net, rand_text  # tests/ is on sys.path (pytest rootdir import mode)

from nnunetv2_tevia.training.alignment import alignment_loss, foreground_vectors


def _finite_grads(net):
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    return grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("dim", [2, 3])
def test_autocast_step_with_grad_scaler(dtype, dim):
    """One training step as nnU-Net does it under AMP: forward in autocast, fp32 losses, scaled backward."""
    _, net = make_net("plain", dim)
    x = torch.randn(2, 1, *([32] * dim))
    text, mask = rand_text(2)
    target = (torch.rand(2, 1, *([32] * dim)) > 0.7).float()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 16)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    with torch.autocast("cpu", dtype=dtype):
        out, aux = net(x, text, mask, return_aux=True)
        assert out[0].dtype == dtype  # the convolutions and attention really ran in half precision
        seg = torch.nn.functional.binary_cross_entropy_with_logits(out[0][:, 1:2].float(), target)
        vectors = [foreground_vectors(aux["features"], target, s.channels)[0] for s in net.guided_stages]
        align = alignment_loss(aux["text_vectors"], vectors, torch.ones(2, dtype=torch.bool))
        assert align.dtype == torch.float32  # cosine in fp32: half precision underflows for small vectors
        loss = seg + 0.1 * align
    scaler.scale(loss).backward()
    scaler.unscale_(opt)
    assert torch.isfinite(loss) and _finite_grads(net)
    # the text branch gets gradient under autocast too (gate, projections, attention)
    assert all(s.gate.grad is not None and s.text_projection.to_channels.weight.grad.abs().sum() > 0
               for s in net.guided_stages)
    scaler.step(opt)
    scaler.update()


def test_half_precision_output_close_to_fp32():
    _, net = make_net("plain", 2)
    net.eval()
    x = torch.randn(1, 1, 32, 32)
    text, mask = rand_text(1)
    with torch.no_grad():
        ref = net(x, text, mask)[0]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = net(x, text, mask)[0].float()
    assert torch.allclose(ref, half, atol=0.1 * ref.abs().max().item())


@pytest.mark.slow
def test_compiled_network_follows_the_current_case_text():
    """nnU-Net compiles the network (nnUNet_compile), and every forward is given its case's text. A compiled graph
    must never keep an earlier case's text."""
    _, net = make_net("plain", 2)
    net.eval()
    compiled = torch.compile(net)
    x = torch.randn(1, 1, 32, 32)
    (t1, m1), (t2, m2) = rand_text(1), rand_text(1)
    with torch.no_grad():
        eager = [net(x, t, m)[0] for t, m in ((t1, m1), (t2, m2))]
        outs = []
        for t, m in ((t1, m1), (t2, m2), (t1, m1)):
            outs.append(compiled(x, t, m)[0])
        passed = compiled(x, t2, m2)[0]
    assert not torch.allclose(eager[0], eager[1])  # the two texts do give different outputs
    assert torch.allclose(outs[0], eager[0], atol=1e-4) and torch.allclose(outs[1], eager[1], atol=1e-4)
    assert torch.allclose(outs[2], eager[0], atol=1e-4) and torch.allclose(passed, eager[1], atol=1e-4)
