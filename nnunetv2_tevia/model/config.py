"""What the predictor needs to rebuild a TeViA network, stored in the results folder's ``plans.json``.

nnU-Net's ``build_network_architecture`` only receives the plans, so the text settings go into
``plans["tevia"]`` (and are mirrored in every checkpoint, to catch folds trained with another encoder).

The defaults are the shipped design, what ``nnUNetTrainerTeViA`` writes (its attributes start from them). A plans.json
or checkpoint written before a field existed means what the code did then (``LEGACY``), read by ``from_dict``.
"""
from dataclasses import asdict, dataclass, field
from typing import List, Optional

PLANS_KEY = "tevia"
DESIGNS = ("tevia", "reference")  # GuidedStage (guided_stage.py), ReferenceGuidedStage (reference_stage.py)
DEFAULT_INITIAL_SCALE = {"tevia": 0.1, "reference": 0.01}
# TextProjection, AttentionPoolProjection, TokenProjection (model/text_projection.py); "tokens" is an ablation
TEXT_READERS = ("conv", "attention", "tokens")


# What a saved dict without the key means: the network as it was built before the field existed.
LEGACY = {
    "design": "reference",  # before the redesign, every model was the reference arrangement
    "sentence_key": False,  # before issue 19: no sentence key ...
    "text_dropout": 0.0,    # ... and no text dropout
}


def default_slot_counts(text_tokens: int, num_stages: int, design: str = "reference") -> List[int]:
    """Slots per guided stage, lowest resolution first. Reference: L, L/2, 3L/8 (24, 12, 9), then halving.
    Default design: L at every stage (measured on the demo, docs/architecture.md)."""
    if design != "reference":
        return [text_tokens] * num_stages
    counts = [text_tokens, max(1, text_tokens // 2), max(1, round(3 * text_tokens / 8))]
    while len(counts) < num_stages:
        counts.append(max(1, counts[-1] // 2))
    return counts[:num_stages]


@dataclass
class TeViAConfig:
    text_tokens: int                      # L: max tokens of the cache
    text_dim: int                         # D: encoder hidden size
    design: str = "tevia"                 # one of DESIGNS
    num_guided_stages: int = 3            # K, capped by the decoder's stage count when building
    slots: Optional[List[int]] = None     # L_s per guided stage; default_slot_counts when None
    self_attention_heads: int = 1         # reference design only
    cross_attention_heads: int = 4
    initial_scale: Optional[float] = None  # gate (tevia) or scale (reference) at init; None: DEFAULT_INITIAL_SCALE
    encoder: dict = field(default_factory=dict)   # TextCache.encoder_record(): spec, id, revision, max_tokens, dim
    no_report_text: str = ""
    text_dropout: float = 0.2             # > 0: the model also serves cases without a report
    no_report_training_cases: int = 0     # training cases without a report (trained on the no-report text)
    case_text: bool = True                # False: trained on the no-report text only (_noText ablation)
    patch_position: bool = True           # default design: positions are the patch's place in the image
    mirror: Optional[dict] = None         # mirrorText: the word map (mirror_map_to_json) flipped texts were made with
    # How the default design reads the tokens into slots (TEXT_READERS), and whether the report's sentence
    # embedding is one more key. Plans written before these existed read as "conv" without a sentence key.
    text_reader: str = "conv"
    sentence_key: bool = True
    # Ablation switches of the default design: each undoes one departure from the reference code, so that
    # benchmarks/plain_loop_ablation.py reruns docs/architecture.md's departures table on the real GuidedStage.
    # The defaults are the default design (plans written before the switches existed read as it).
    text_norms: bool = True       # LayerNorm before and after every text projection (False: raw encoder features)
    null_key: bool = True         # one learned "nothing" key before the report's keys
    slot_position: bool = False   # add a 1D sinusoid over the key axis to the keys (the reference's)
    self_attention: bool = False  # a self-attention over the map before the cross-attention (the reference's)
    guide_inputs: bool = False    # guide the inputs of decoder stages 0..K-1 (the reference's place), not their outputs

    def __post_init__(self):
        if self.design not in DESIGNS:
            raise ValueError(f"unknown TeViA design {self.design!r}; known: {', '.join(DESIGNS)}")
        if self.text_reader not in TEXT_READERS:
            raise ValueError(f"unknown text reader {self.text_reader!r}; known: {', '.join(TEXT_READERS)}")
        if self.initial_scale is None:
            self.initial_scale = DEFAULT_INITIAL_SCALE[self.design]

    @property
    def serves_no_report(self) -> bool:
        """Whether the model was trained on the no-report text, so that a case without a report may be predicted on it
        (docs/text_dropout.md): text dropout, training cases without a report, or _noText."""
        return self.text_dropout > 0 or self.no_report_training_cases > 0 or not self.case_text

    def resolved_slots(self, num_stages: int) -> List[int]:
        if self.slots:
            return list(self.slots[:num_stages])
        return default_slot_counts(self.text_tokens, num_stages, self.design)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TeViAConfig":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**{**LEGACY, **known})
