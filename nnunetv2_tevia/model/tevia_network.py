"""A plans-built nnU-Net network with TeViA's text-guided stages on its K lowest-resolution decoder stages.

The default design (``GuidedStage``) guides the outputs of decoder stages 0..K-1; the reference design
(``ReferenceGuidedStage``) guides their inputs, as the reference code does. The wrapper keeps the original
``encoder`` and ``decoder`` modules under their own names, so every key of the plain network's state dict is
present here with the same shape (fine-tuning from a plain checkpoint only adds ``guidance.*`` and
``no_report_text_*``). ``decoder.deep_supervision`` keeps working.

Text reaches the network one way: ``forward(x, text, text_mask, patch_box=...)``. The training step, the validation
step (through nnunet_seam.network_called_with, as nnU-Net calls ``network(data)`` there) and the predictor pass each
forward's text and patch box; the network holds none. A forward without text runs on the no-report text only if
``allow_no_report`` is set (_noText, or nnU-Net's own nnUNetv2_predict with NNUNETV2_TEVIA_ALLOW_NO_REPORT=1);
nnUNetv2_tevia_predict instead passes the no-report text explicitly to the cases without a report when the model was
trained for them (text dropout, the default). Otherwise the forward refuses: a TeViA model never quietly gives
text-free results.
"""
from typing import List, Optional

import torch
from dynamic_network_architectures.building_blocks.unet_decoder import UNetDecoder
from torch import nn
from torch._dynamo import OptimizedModule

from nnunetv2_tevia.errors import MissingTextError
from nnunetv2_tevia.model.config import TeViAConfig
from nnunetv2_tevia.model.guided_stage import GuidedStage
from nnunetv2_tevia.model.reference_stage import ReferenceGuidedStage

NO_TEXT_MESSAGE = (
    "this TeViA network got no report text for the current case. Predict with nnUNetv2_tevia_predict (it "
    "embeds each case's report), or pass the text explicitly: network(x, features, mask). To run a model trained without text dropout on "
    "the no-report text anyway, set NNUNETV2_TEVIA_ALLOW_NO_REPORT=1 (results are text-free).")


class TeViANetwork(nn.Module):
    def __init__(self, base: nn.Module, config: TeViAConfig):
        super().__init__()
        if not isinstance(getattr(base, "decoder", None), UNetDecoder):
            raise TypeError(f"TeViA guides dynamic-network-architectures' UNetDecoder; {type(base).__name__} has "
                            f"decoder {type(getattr(base, 'decoder', None)).__name__}. Use PlainConvUNet or "
                            f"ResidualEncoderUNet plans (nnUNetPlans, nnUNetResEncUNet*Plans).")
        self.encoder = base.encoder
        self.decoder = base.decoder
        self.config = config
        num_stages = min(config.num_guided_stages, len(self.decoder.stages))
        slots = config.resolved_slots(num_stages)
        if config.design == "reference":
            # the input of decoder stage s is the bottleneck (s = 0) or the output of stage s - 1,
            # which has the channels of encoder stage -(s + 1)
            channels = [self.encoder.output_channels[-(s + 1)] for s in range(num_stages)]
            stages = [ReferenceGuidedStage(c, config.text_tokens, config.text_dim, l, config.self_attention_heads,
                                           config.cross_attention_heads, config.initial_scale)
                      for c, l in zip(channels, slots)]
        else:
            # the output of decoder stage s has the channels of the skip it was concatenated with (its input: see
            # above, for the guide_inputs ablation)
            offset = 1 if config.guide_inputs else 2
            channels = [self.encoder.output_channels[-(s + offset)] for s in range(num_stages)]
            stages = [GuidedStage(c, config.text_tokens, config.text_dim, l, config.cross_attention_heads,
                                  config.initial_scale, config.text_reader, config.sentence_key,
                                  text_norms=config.text_norms, null_key=config.null_key,
                                  slot_position=config.slot_position, self_attention=config.self_attention)
                      for c, l in zip(channels, slots)]
        self.guidance = nn.ModuleList(stages)
        self.guides_inputs = config.design == "reference" or config.guide_inputs
        self.register_buffer("no_report_text_features", torch.zeros(config.text_tokens, config.text_dim))
        self.register_buffer("no_report_text_mask", torch.zeros(config.text_tokens, dtype=torch.bool))
        self.allow_no_report = not config.case_text  # _noText; others only by explicit opt-in (build_network_architecture)

    def set_no_report_text(self, features: torch.Tensor, mask: torch.Tensor) -> None:
        self.no_report_text_features.copy_(torch.as_tensor(features))
        self.no_report_text_mask.copy_(torch.as_tensor(mask, dtype=torch.bool))

    def _resolve_text(self, batch: int, text, text_mask, like: torch.Tensor):
        if text is None:
            if self.allow_no_report:
                text, text_mask = self.no_report_text_features[None], self.no_report_text_mask[None]
            else:
                raise MissingTextError(NO_TEXT_MESSAGE)
        if text_mask is None:
            text_mask = torch.ones(text.shape[:2], dtype=torch.bool, device=text.device)
        if text.shape[0] == 1 and batch > 1:  # one case's text for a batch of its tiles
            text, text_mask = text.expand(batch, -1, -1), text_mask.expand(batch, -1)
        if text.shape[0] != batch:
            raise ValueError(f"got text for {text.shape[0]} cases but a batch of {batch}")
        if tuple(text.shape[1:]) != (self.config.text_tokens, self.config.text_dim):
            raise ValueError(f"text features have shape (L, D) = {tuple(text.shape[1:])}, but this network was "
                             f"built for ({self.config.text_tokens}, {self.config.text_dim}): the embeddings come "
                             f"from another encoder or max-tokens setting than the model's")
        return text.to(device=like.device, dtype=like.dtype), text_mask.to(like.device)

    def forward(self, x: torch.Tensor, text: Optional[torch.Tensor] = None,
                text_mask: Optional[torch.Tensor] = None, return_aux: bool = False,
                patch_box: Optional[torch.Tensor] = None):
        """Segmentation logits (a list under deep supervision). With ``return_aux`` also a dict of what the
        alignment loss and the prototype need: the last decoder features, each guided stage's feature map, its
        projected text and its text vector. ``patch_box``: where the patches lie in their image, (ndim, 2) or
        (B, ndim, 2), each axis's first and last voxel in the image's [0, 1] coordinates; None: the patch is the
        image."""
        # under autocast, x is fp32 but the attention runs in half precision; keep text in x's dtype
        text, text_mask = self._resolve_text(x.shape[0], text, text_mask, x)
        box = torch.as_tensor(patch_box, dtype=torch.float32) if self.config.patch_position and patch_box is not None \
            else None
        if box is not None:
            box = box if box.ndim == 3 else box[None]
            box = box.to(x.device).expand(x.shape[0], -1, -1) if box.shape[0] == 1 else box.to(x.device)
        skips = self.encoder(x)
        dec = self.decoder
        lres = skips[-1]
        seg_outputs: List[torch.Tensor] = []
        aux = {"stage_features": [], "projected_text": [], "text_vectors": []}

        def guide(s: int, features: torch.Tensor) -> torch.Tensor:
            stage = self.guidance[s]
            keys = stage.project_text(text, text_mask)
            aux["stage_features"].append(features)
            aux["projected_text"].append(keys)
            aux["text_vectors"].append(stage.text_vector(keys))
            return stage(features, keys, box)

        # UNetDecoder.forward's loop (a test checks it still equals UNetDecoder's), with guided stages applied to
        # the inputs (reference design) or outputs (default) of the first K decoder stages
        for s in range(len(dec.stages)):
            if self.guides_inputs and s < len(self.guidance):
                lres = guide(s, lres)
            y = dec.transpconvs[s](lres)
            y = torch.cat((y, skips[-(s + 2)]), 1)
            y = dec.stages[s](y)
            if not self.guides_inputs and s < len(self.guidance):
                y = guide(s, y)
            if dec.deep_supervision:
                seg_outputs.append(dec.seg_layers[s](y))
            elif s == len(dec.stages) - 1:
                seg_outputs.append(dec.seg_layers[-1](y))
            lres = y
        seg_outputs = seg_outputs[::-1]
        out = seg_outputs if dec.deep_supervision else seg_outputs[0]
        if return_aux:
            return out, dict(aux, features=lres)
        return out

    def compute_conv_feature_map_size(self, input_size):
        return self.encoder.compute_conv_feature_map_size(input_size) + \
            self.decoder.compute_conv_feature_map_size(input_size)

    # --- prototype bookkeeping over all guided stages ---
    @property
    def guided_stages(self) -> List[nn.Module]:
        return list(self.guidance)


def unwrap(network: nn.Module) -> TeViANetwork:
    """The TeViANetwork inside DDP and torch.compile wrappers."""
    if isinstance(network, nn.parallel.DistributedDataParallel):
        network = network.module
    if isinstance(network, OptimizedModule):
        network = network._orig_mod
    return network
