"""Texts of the cases to predict: read from a prompt file, embedded with the model's own encoder.

The model's plans.json records the encoder (spec, id, revision), max tokens and dim it was trained
with; prediction embeds with exactly that encoder, into a cache beside the output (or a folder of the
user's), so nothing from ``nnUNet_preprocessed`` is needed.
"""
import os
from typing import Dict, Iterable, Optional, Tuple

import numpy as np

from nnunetv2_tevia.errors import EncoderError, MissingTextError
from nnunetv2_tevia.model.config import TeViAConfig
from nnunetv2_tevia.prompts.prompt_file import PromptFile

TextFeatures = Tuple[np.ndarray, np.ndarray]


def texts_for_cases(pf: Optional[PromptFile], case_ids: Iterable[str], model_no_report_text: str,
                    allow_missing_text: bool) -> Dict[str, str]:
    """Each case's report; the prompt file's no-report text (or, with ``allow_missing_text``, the model's)
    for cases without one. A case with neither is an error naming every such case."""
    cases = pf.cases if pf is not None else {}
    # only an explicit "default" of the prompt file stands in for a missing report; otherwise the model's own
    # no-report text (the one it was trained with), and only when the user asked for it
    fallback = pf.default if pf is not None and pf.default else ""
    if not fallback and allow_missing_text:
        fallback = model_no_report_text
    texts, missing = {}, []
    for k in case_ids:
        text = cases.get(k)
        if isinstance(text, str) and text.strip():
            texts[k] = text
        elif fallback or allow_missing_text:
            texts[k] = fallback
        else:
            missing.append(k)
    if missing:
        where = pf.path if pf is not None and pf.path else "the prompt file (none was given)"
        shown = ", ".join(missing[:10]) + (f" ... and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise MissingTextError(
            f"{len(missing)} case(s) to predict have no report text in {where}: {shown}. Add their reports "
            f"(nnUNetv2_tevia_prompts import/init), pass --prompts FILE, set a \"default\" text in the prompt "
            f"file, or pass --allow-missing-text to use the model's no-report text for them")
    return texts


def embed_for_model(texts: Dict[str, str], config: TeViAConfig, cache_root: str, *, encoder_spec: Optional[str] = None,
                    device=None, trust_remote_code: bool = False, progress: bool = True) -> Dict[str, TextFeatures]:
    """Embed with the encoder the model was trained with. ``encoder_spec`` may point elsewhere (the model was
    trained on another machine with ``-e hf:/their/folder``); the weights must still be the same."""
    from nnunetv2_tevia.text.cache import record_mismatches
    from nnunetv2_tevia.text.embed import embed_prompts
    from nnunetv2_tevia.text.encoders import load_encoder

    record = dict(config.encoder, max_tokens=config.text_tokens)
    spec = encoder_spec or record["encoder_spec"]
    encoder = load_encoder(spec, clip_pretrained=record.get("clip_pretrained"),
                           trust_remote_code=trust_remote_code, device=device)
    diffs = record_mismatches(dict(encoder.record(), max_tokens=config.text_tokens), record)
    if diffs:
        raise EncoderError(
            f"the model was trained with text encoder {record.get('encoder_id')} (revision "
            f"{record.get('revision')}, dim {record.get('dim')}), but {spec!r} loads {encoder.encoder_id} "
            f"(revision {encoder.revision}, dim {encoder.dim}); they differ in {', '.join(diffs)}. Point "
            f"--text-encoder at a copy of the exact encoder the model was trained with")
    cache = embed_prompts(PromptFile(path=None, cases=dict(texts)), os.path.abspath(cache_root), encoder,
                          max_tokens=config.text_tokens, mark_active=False, progress=progress)
    return {k: cache.features(k) if cache.has_case(k) else cache.no_report_features() for k in texts}
