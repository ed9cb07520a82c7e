"""Texts of the cases to predict: read from a prompt file, embedded with the model's own encoder.

The model's plans.json records the encoder (spec, id, revision), max tokens and dim it was trained
with; prediction embeds with exactly that encoder, into a cache beside the output (or a folder of the
user's), so nothing from ``nnUNet_preprocessed`` is needed.
"""
import json
import os
from typing import Callable, Dict, Iterable, Optional, Tuple

import numpy as np

from nnunetv2_tevia.errors import EncoderError, MissingTextError, TextCacheError
from nnunetv2_tevia.model.config import TeViAConfig
from nnunetv2_tevia.model.forward_text import CaseText
from nnunetv2_tevia.prompts.mirror_words import MirrorMap
from nnunetv2_tevia.prompts.prompt_file import PromptFile, text_sha256
from nnunetv2_tevia.prompts.text_choice import DEFAULT, REPORT, TextChoice, choose_texts, prediction_rule
from nnunetv2_tevia.text.cache.mirror import changed_flips, parse_flip_key

TextFeatures = Tuple[np.ndarray, np.ndarray]


def texts_for_cases(pf: Optional[PromptFile], case_ids: Iterable[str], config: TeViAConfig, allow_missing_text: bool,
                    inputs: str = "the input", log=print, *, given: bool = False) -> Dict[str, TextChoice]:
    """Each case's text by the one rule (prompts/text_choice.py, ``prediction_rule``): its report; for a case without
    one, the prompt file's "default", else the model's no-report text when the model was trained to serve cases
    without a report (``config.serves_no_report``: text dropout, the default trainer) or ``allow_missing_text`` asks
    for it; ``log`` says how many cases that is. A case with no text at all is an error naming every such case, and
    so is a prompt file that names none of the cases (``inputs``: where they come from), unless
    ``allow_missing_text`` asks for that. ``given``: ``pf`` holds the texts an in-memory call was given.

    A model that never read a report in training (``config.case_text`` False, the _noText ablation) gets the one
    text it was trained on, its no-report text, for every case; the reports are not read."""
    case_ids = list(case_ids)
    rule = prediction_rule(config.no_report_text, serves_no_report=config.serves_no_report,
                           case_text=config.case_text, allow_missing_text=allow_missing_text,
                           default=pf.default if pf is not None else None,
                           prompt_path=pf.path if pf is not None else None, given=given)
    if not config.case_text:
        if case_ids:
            log(f"the model was trained without reports (_noText: every training case on its no-report text), so "
                f"all {len(case_ids)} case(s) are predicted on that text; their reports are not read")
        return choose_texts(case_ids, {}, rule)
    cases = pf.cases if pf is not None else {}
    if pf is not None and case_ids and not allow_missing_text and not any(k in cases for k in case_ids):
        shown = ", ".join(case_ids[:3]) + (" ..." if len(case_ids) > 3 else "")
        raise MissingTextError(
            f"none of the {len(case_ids)} case(s) in {inputs} ({shown}) is in the prompt file {pf.path}: is it the "
            f"prompt file of another dataset? Pass --prompts with these cases' reports, or --allow-missing-text to "
            f"predict every case on the no-report text on purpose")
    choices = choose_texts(case_ids, cases, rule)
    without = [k for k, c in choices.items() if c.source != REPORT]
    if without:
        source = "the prompt file's \"default\"" if choices[without[0]].source == DEFAULT else \
            "the model's no-report text" + (" (it was trained for cases without a report)" if config.serves_no_report
                                            else "")
        log(f"{len(without)} of {len(case_ids)} case(s) have no report and are predicted on {source}: "
            f"{', '.join(without[:5])}{' ...' if len(without) > 5 else ''}")
    return choices


def given_texts(texts: Dict[str, str], config: TeViAConfig, allow_missing_text: bool, log=print
                ) -> Dict[str, TextChoice]:
    """The texts given with in-memory arrays (``texts=``, ``text=``), by the same rule: a blank one is a case
    without a report."""
    return texts_for_cases(PromptFile(path=None, cases=dict(texts)), texts, config, allow_missing_text,
                           "the texts given", log, given=True)


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


def prediction_prompts(choices: Dict[str, TextChoice], mirror_map: Optional[MirrorMap] = None) -> PromptFile:
    """What prediction embeds, as the prompt file of a text cache: the reports as its cases (with ``mirror_map``
    their flipped texts, filed by (case, flip) as every text cache files them, text/cache/mirror.py), the one
    stand-in text of the other cases as its no-report text, and no paraphrases (prediction reads none)."""
    stand_ins = sorted({c.text for c in choices.values() if c.source != REPORT})
    if len(stand_ins) > 1:
        raise ValueError(f"one stand-in text for the cases without a report, got {len(stand_ins)}")
    return PromptFile(path=None, cases={k: c.text for k, c in choices.items() if c.source == REPORT},
                      default=stand_ins[0] if stand_ins else None, mirror=mirror_map, paraphrase={"variants": 0})


def _case_texts(choices: Dict[str, TextChoice], mirror_map: Optional[MirrorMap],
                load: Callable[[str], TextFeatures]) -> Dict[str, CaseText]:
    """Each case's CaseText, every text read by its sha256 (``load``): the report or stand-in, and a report's
    flips that change it (``changed_flips``, the function the cache's "mirror" section is written with)."""
    out = {}
    for k, c in choices.items():
        flips = changed_flips(c.text, mirror_map) if mirror_map is not None and c.source == REPORT else {}
        out[k] = CaseText.of(k, *load(text_sha256(c.text)),
                             {parse_flip_key(key): load(text_sha256(text)) for key, text in flips.items()})
    return out


def cached_features(choices: Dict[str, TextChoice], record: dict, cache_root: str,
                    mirror_map: Optional[MirrorMap] = None) -> Optional[Dict[str, CaseText]]:
    """Every case's CaseText from an earlier run's cache for the encoder ``record`` describes, or None as soon
    as one text is missing or unreadable (or the cache was made by another encoder).

    The cache folder is the one ``embed_prompts`` writes for that record; its manifest must name the same
    encoder (id, revision, dim, max_tokens). Texts are looked up by their sha256, the rule ``embed_prompts``
    files them under, so the features are exactly the ones a fresh embedding would return, and the encoder is not
    loaded at all.
    """
    from nnunetv2_tevia.text.cache import MANIFEST, TextCache, cache_slug, load_text_npz, record_mismatches

    root = os.path.abspath(cache_root)
    folder = root if os.path.isfile(os.path.join(root, MANIFEST)) else \
        os.path.join(root, cache_slug(record["encoder_id"], record["revision"], record["max_tokens"]))
    try:
        cache = TextCache.open(folder)
        if record_mismatches(cache.encoder_record(), record):
            return None
        return _case_texts(choices, mirror_map,
                           lambda sha: load_text_npz(cache.text_path(sha), cache.max_tokens, cache.dim)[:2])
    except Exception:  # missing, partial or corrupt: embed_prompts recomputes (and repairs) what is needed
        return None


def embed_for_model(choices: Dict[str, TextChoice], config: TeViAConfig, cache_root: str, *,
                    mirror_map: Optional[MirrorMap] = None, encoder_spec: Optional[str] = None, device=None,
                    trust_remote_code: bool = False, progress: bool = True,
                    own_cache_root: Optional[str] = None) -> Dict[str, CaseText]:
    """Each case's CaseText (``texts_for_cases``' choices), embedded with the encoder the model was trained with; with
    ``mirror_map`` a report's flips too. ``encoder_spec`` may point elsewhere (the model was trained on another
    machine with ``-e hf:/their/folder``); the weights must still be the same.

    When the cache already holds every text for that encoder, nothing is loaded: predicting a folder again,
    or on a machine without the encoder's weights but with the cache, costs no encoder start-up.
    A dataset's training cache is only read, never written: what it lacks is embedded into ``own_cache_root``.
    """
    from nnunetv2_tevia.text.cache import record_mismatches
    from nnunetv2_tevia.text.cache.lock import cache_lock
    from nnunetv2_tevia.text.embed import embed_prompts
    from nnunetv2_tevia.text.encoders import load_encoder

    record = dict(config.encoder, max_tokens=config.text_tokens)
    found = cached_features(choices, record, cache_root, mirror_map)
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
        found = cached_features(choices, record, cache_root, mirror_map)
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
        cache = embed_prompts(prediction_prompts(choices, mirror_map), os.path.abspath(cache_root), encoder,
                              max_tokens=config.text_tokens, mark_active=False, progress=progress)
    return _case_texts(choices, mirror_map, lambda sha: cache.features_of_text(sha, "a text to predict with"))
