"""Two optimizers in one object: nnU-Net's SGD for the U-Net, AdamW for the text pathway.

nnU-Net's trainer holds one ``self.optimizer`` and calls ``zero_grad``, ``step``, ``state_dict`` and
``load_state_dict`` on it, hands it to the AMP ``GradScaler`` (``unscale_`` and ``step`` read ``param_groups``
and call ``step``) and logs ``param_groups[0]['lr']``. ``OptimizerGroup`` offers exactly that over several
torch optimizers, so nnU-Net's training loop, ``--c`` and AMP work unchanged.

``PolyLRGroupScheduler`` is nnU-Net's poly schedule, ``lr = initial_lr * (1 - epoch / max_epochs) ** 0.9``, applied
to each parameter group's own ``initial_lr`` (nnU-Net's ``PolyLRScheduler`` writes one lr into every group).
``initial_lr`` is a key of each group, so it is saved and restored with the optimizer state.
"""
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from torch import nn


class OptimizerGroup:
    def __init__(self, optimizers: Sequence[torch.optim.Optimizer]):
        self.optimizers = list(optimizers)

    @property
    def param_groups(self) -> List[dict]:
        return [g for o in self.optimizers for g in o.param_groups]

    @property
    def state(self) -> Dict:
        merged = {}
        for o in self.optimizers:
            merged.update(o.state)
        return merged

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def step(self, closure=None):
        if closure is not None:
            raise ValueError("OptimizerGroup.step takes no closure")
        for o in self.optimizers:
            o.step()

    def state_dict(self) -> dict:
        return {"optimizer_group": [o.state_dict() for o in self.optimizers],
                "types": [type(o).__name__ for o in self.optimizers]}

    def load_state_dict(self, state: dict) -> None:
        mine = [type(o).__name__ for o in self.optimizers]
        if "optimizer_group" not in state or state.get("types") != mine:
            theirs = state.get("types", [f"one {state.get('__class__', 'torch')} optimizer"]) \
                if isinstance(state, dict) else "?"
            raise ValueError(f"this checkpoint's optimizer state holds {theirs}, but the trainer uses {mine}: it was "
                             f"written by another trainer (for example nnUNetTrainerTeViA_reference, whose text "
                             f"pathway uses nnU-Net's SGD). Continue it with the trainer that wrote it, or start a "
                             f"new training from its weights with -pretrained_weights")
        for o, s in zip(self.optimizers, state["optimizer_group"]):
            o.load_state_dict(s)

    def __repr__(self) -> str:
        return f"OptimizerGroup({', '.join(type(o).__name__ for o in self.optimizers)})"


class PolyLRGroupScheduler:
    def __init__(self, optimizer, max_steps: int, exponent: float = 0.9):
        self.optimizer = optimizer
        self.max_steps = max_steps
        self.exponent = exponent
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])

    def step(self, current_step: int) -> None:
        factor = poly_factor(current_step, self.max_steps, self.exponent)
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor


def poly_factor(step: int, max_steps: int, exponent: float = 0.9) -> float:
    return max(0.0, 1 - step / max_steps) ** exponent


def build_optimizer(network: nn.Module, text_pathway: nn.Module, lr: float, weight_decay: float,
                    text_optimizer: Optional[str], text_lr: float, text_weight_decay: float) -> OptimizerGroup:
    """nnU-Net's SGD (momentum 0.99, Nesterov) for every parameter of ``network`` outside ``text_pathway``, and
    AdamW for ``text_pathway`` (weight decay on its matrices only); ``text_optimizer=None``: SGD for everything."""
    def sgd(params):
        return torch.optim.SGD(params, lr, weight_decay=weight_decay, momentum=0.99, nesterov=True)

    if text_optimizer is None:
        return OptimizerGroup([sgd(network.parameters())])
    if text_optimizer.lower() != "adamw":
        raise ValueError(f"text_optimizer {text_optimizer!r}: use 'adamw' or None (nnU-Net's SGD)")
    text_ids = {id(p) for p in text_pathway.parameters()}
    decay, no_decay = split_decay(text_pathway.named_parameters())
    return OptimizerGroup([
        sgd([p for p in network.parameters() if id(p) not in text_ids]),
        adamw([{"params": decay, "weight_decay": text_weight_decay},
               {"params": no_decay, "weight_decay": 0.0}], lr=text_lr),
    ])


def adamw(groups: List[dict], lr: float) -> torch.optim.AdamW:
    """AdamW with torch's fused kernel where the parameters' device has one (CPU and CUDA do): one kernel per
    tensor instead of a dozen: on the 2-core development CPU the step of the 2.9 M text parameters of a 2D plan
    took 7-9 ms instead of 33-47 ms (docs/performance.md). It works under AMP: nnU-Net's GradScaler unscales before the step."""
    try:
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    except RuntimeError:  # a device without a fused AdamW
        return torch.optim.AdamW(groups, lr=lr)


def split_decay(parameters: Iterable[Tuple[str, nn.Parameter]]) -> Tuple[List[nn.Parameter], List[nn.Parameter]]:
    """(matrices, the rest): weight decay for weight matrices only, none for gates, norms, biases and null keys."""
    decay, no_decay = [], []
    for _, p in parameters:
        (decay if p.ndim > 1 else no_decay).append(p)
    return decay, no_decay
