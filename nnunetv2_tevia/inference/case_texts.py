"""Texts of the cases to predict: read from a prompt file, embedded with the model's own encoder.

The model's plans.json records the encoder (spec, id, revision), max tokens and dim it was trained
with; prediction embeds with exactly that encoder, into a cache beside the output (or a folder of the
user's), so nothing from ``nnUNet_preprocessed`` is needed.
"""
import json
import os
from typing import Dict, Iterable, Optional, Tuple

import numpy as np

from nnunetv2_tevia.errors import EncoderError, MissingTextError, TextCacheError
from nnunetv2_tevia.model.config import TeViAConfig
from nnunetv2_tevia.prompts.prompt_file import PromptFile

TextFeatures = Tuple[np.ndarray, np.ndarray]


def texts_for_cases(pf: Optional[PromptFile], case_ids: Iterable[str], model_no_report_text: str,
                    allow_missing_text: bool, inputs: str = "the input", model_serves_no_report: bool = False,
                    log=print, model_reads_reports: bool = True) -> Dict[str, str]:
    """Each case's report; for a case without one, the prompt file's "default", else the model's no-report text when
    the model was trained to serve cases without a report (``model_serves_no_report``: text dropout, the default
    trainer) or ``allow_missing_text`` asks for it; ``log`` says how many cases that is. A case with no text at all
    is an error naming every such case, and so is a prompt file that names none of the cases (``inputs``: where
    they come from), unless ``allow_missing_text`` asks for that.

    A model that never read a report in training (``model_reads_reports`` False: TeViAConfig.case_text, the _noText
    ablation) gets the one text it was trained on, its no-report text, for every case; the reports are not read."""
    case_ids = list(case_ids)
    if not model_reads_reports:
        if case_ids:
            log(f"the model was trained without reports (_noText: every training case on its no-report text), so "
                f"all {len(case_ids)} case(s) are predicted on that text; their reports are not read")
        return {k: model_no_report_text for k in case_ids}
    cases = pf.cases if pf is not None else {}
    if pf is not None and case_ids and not allow_missing_text and not any(k in cases for k in case_ids):
        shown = ", ".join(case_ids[:3]) + (" ..." if len(case_ids) > 3 else "")
        raise MissingTextError(
            f"none of the {len(case_ids)} case(s) in {inputs} ({shown}) is in the prompt file {pf.path}: is it the "
            f"prompt file of another dataset? Pass --prompts with these cases' reports, or --allow-missing-text to "
            f"predict every case on the no-report text on purpose")
    # only an explicit "default" of the prompt file stands in for a missing report; otherwise the model's own
    # no-report text (the one it was trained with), and only when the user asked for it
    fallback = pf.default if pf is not None and pf.default else ""
    if not fallback and (allow_missing_text or model_serves_no_report):
        fallback = model_no_report_text
        allow_missing_text = True
    texts, missing = {}, []
    for k in case_ids:
        text = cases.get(k)
        if isinstance(text, str) and text.strip():
            texts[k] = text
        elif fallback or allow_missing_text:
            texts[k] = fallback
        else:
            missing.append(k)
    without = [k for k in case_ids if k not in missing and not (isinstance(cases.get(k), str) and cases[k].strip())]
    if without and not missing:
        source = "the prompt file's \"default\"" if pf is not None and pf.default else \
            "the model's no-report text" + (" (it was trained for cases without a report)" if model_serves_no_report
                                            else "")
        log(f"{len(without)} of {len(case_ids)} case(s) have no report and are predicted on {source}: "
            f"{', '.join(without[:5])}{' ...' if len(without) > 5 else ''}")
    if missing:
        where = pf.path if pf is not None and pf.path else "the prompt file (none was given)"
        shown = ", ".join(missing[:10]) + (f" ... and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise MissingTextError(
            f"{len(missing)} case(s) to predict have no report text in {where}: {shown}. Add their reports "
            f"(nnUNetv2_tevia_prompts import/init), pass --prompts FILE, set a \"default\" text in the prompt "
            f"file, or pass --allow-missing-text to use the model's no-report text for them")
    return texts


def training_cache_prompt_file(cache_root: str) -> Optional[str]:
    """The prompt file a dataset's text cache was embedded from, when ``cache_root`` (a cache root, or one encoder's
    folder in it) is one; None for prediction's own caches, which record none. ``nnUNetv2_tevia_prompts embed``
    records its prompt file in every manifest; prediction embeds bare texts."""
    from nnunetv2_tevia.text.cache import MANIFEST

    root = os.path.abspath(cache_root)
    folders = [root] + ([os.path.join(root, d) for d in sorted(os.listdir(root))] if os.path.isdir(root) else [])
    for folder in folders:
        try:
            with open(os.path.join(folder, MANIFEST), encoding="utf-8") as f:
                prompt_file = json.load(f).get("prompt_file")
        except (OSError, ValueError, AttributeError):
            continue
        if prompt_file:
            return prompt_file
    return None


def cached_features(texts: Dict[str, str], record: dict, cache_root: str) -> Optional[Dict[str, TextFeatures]]:
    """Every text's features from an earlier run's cache for the encoder ``record`` describes, or None as soon
    as one is missing or unreadable (or the cache was made by another encoder).

    The cache folder is the one ``embed_prompts`` writes for that record; its manifest must name the same
    encoder (id, revision, dim, max_tokens). Texts are looked up by their sha256, the rule ``embed_prompts``
    files them under (an empty text is the prompt file's no-report text), so the features are exactly the
    ones a fresh embedding would return, and the encoder is not loaded at all.
    """
    from nnunetv2_tevia.prompts.prompt_file import no_report_text, text_sha256
    from nnunetv2_tevia.text.cache import MANIFEST, TextCache, cache_slug, load_text_npz, record_mismatches

    root = os.path.abspath(cache_root)
    folder = root if os.path.isfile(os.path.join(root, MANIFEST)) else \
        os.path.join(root, cache_slug(record["encoder_id"], record["revision"], record["max_tokens"]))
    try:
        cache = TextCache.open(folder)
        if record_mismatches(cache.encoder_record(), record):
            return None
        fallback = no_report_text(PromptFile(path=None, cases=dict(texts)))
        out = {}
        for k, text in texts.items():
            sha = text_sha256(text if isinstance(text, str) and text.strip() else fallback)
            feats, mask, _ = load_text_npz(cache.text_path(sha), cache.max_tokens, cache.dim)
            out[k] = (feats, mask)
        return out
    except Exception:  # missing, partial or corrupt: embed_prompts recomputes (and repairs) what is needed
        return None


def embed_for_model(texts: Dict[str, str], config: TeViAConfig, cache_root: str, *, encoder_spec: Optional[str] = None,
                    device=None, trust_remote_code: bool = False, progress: bool = True,
                    own_cache_root: Optional[str] = None) -> Dict[str, TextFeatures]:
    """Embed with the encoder the model was trained with. ``encoder_spec`` may point elsewhere (the model was
    trained on another machine with ``-e hf:/their/folder``); the weights must still be the same.

    When the cache already holds every text for that encoder, nothing is loaded: predicting a folder again,
    or on a machine without the encoder's weights but with the cache, costs no encoder start-up.
    A dataset's training cache is only read, never written: what it lacks is embedded into ``own_cache_root``.
    """
    from nnunetv2_tevia.text.cache import record_mismatches
    from nnunetv2_tevia.text.cache.lock import cache_lock
    from nnunetv2_tevia.text.embed import embed_prompts
    from nnunetv2_tevia.text.encoders import load_encoder

    record = dict(config.encoder, max_tokens=config.text_tokens)
    found = cached_features(texts, record, cache_root)
    if found is not None:
        return found
    prompt_file = training_cache_prompt_file(cache_root)
    if prompt_file:
        if not own_cache_root or os.path.abspath(own_cache_root) == os.path.abspath(cache_root):
            raise TextCacheError(f"{cache_root} is the training cache of {prompt_file}, which prediction never "
                                 f"writes, and it lacks texts to predict: pass another text cache folder")
        print(f"--text-cache {cache_root} is the training cache of {prompt_file}: prediction only reads it "
              f"(read-only); the texts it lacks are embedded into {own_cache_root}")
        cache_root = own_cache_root
        found = cached_features(texts, record, cache_root)
        if found is not None:
            return found
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
    with cache_lock(os.path.abspath(cache_root), wait=True):  # -num_parts runs share the output folder's cache
        cache = embed_prompts(PromptFile(path=None, cases=dict(texts)), os.path.abspath(cache_root), encoder,
                              max_tokens=config.text_tokens, mark_active=False, progress=progress)
    return {k: cache.features(k) if cache.has_case(k) else cache.no_report_features() for k in texts}
