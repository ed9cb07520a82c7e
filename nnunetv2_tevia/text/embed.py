"""Embed a prompt file into the text cache, once per distinct text, resumable after any interruption.

Each text's npz is written atomically as soon as its batch is done and the manifest is rewritten
after every batch (at most once a second), so a killed run loses at most one batch; a re-run keeps
every file that still loads and computes only what is missing, changed or corrupt.
"""
import glob
import os
import time
from datetime import datetime, timezone
from typing import Dict, Optional

import numpy as np
from tqdm import tqdm

from nnunetv2_tevia.io_utils import atomic_save_npz, atomic_write_json
from nnunetv2_tevia.prompts.prompt_file import no_report_text, text_sha256
from nnunetv2_tevia.prompts.text_choice import has_report
from nnunetv2_tevia.text.cache import (ACTIVE, FORMAT, MANIFEST, TEXTS, VERSION, TextCache, cache_slug,
                                       load_text_npz)
from nnunetv2_tevia.text.cache.mirror import MANIFEST_KEY as MIRROR_KEY, mirror_manifest, mirror_variants
from nnunetv2_tevia.text.cache.variants import MANIFEST_KEY as VARIANTS_KEY, variant_texts, variants_manifest
from nnunetv2_tevia.text.encoders import TextEncoder

MANIFEST_INTERVAL_S = 1.0


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _file_sha256(path: Optional[str]) -> Optional[str]:
    if not path or not os.path.isfile(path):
        return None
    from nnunetv2_tevia.text.encoders import sha256_of_files

    return sha256_of_files([path])


def _previous_created(folder: str) -> Optional[str]:
    try:
        return TextCache.open(folder).manifest.get("created")
    except Exception:  # a corrupt manifest is simply rewritten
        return None


def embed_prompts(pf, cache_root: str, encoder: TextEncoder, max_tokens: int = 24, *, mark_active: bool = True,
                  batch_size: int = 64, progress: bool = True) -> TextCache:
    """Embed every case with text plus the no-report text into ``cache_root/<slug>`` and return the cache.

    The run's numbers (texts computed and reused, seconds, truncation) are in ``cache.manifest["last_run"]``
    and ``cache.manifest["truncation"]``.
    """
    start = time.perf_counter()
    # before any folder is made: a bad --max-tokens must leave no empty cache behind
    encoder.check_max_tokens(max_tokens)
    slug = cache_slug(encoder.encoder_id, encoder.revision, max_tokens)
    folder = os.path.join(os.path.abspath(cache_root), slug)
    texts_dir = os.path.join(folder, TEXTS)
    os.makedirs(texts_dir, exist_ok=True)
    # Leftovers of a killed atomic write; harmless, but they would pile up.
    for tmp in glob.glob(os.path.join(texts_dir, ".*.tmp")) + glob.glob(os.path.join(folder, ".*.tmp")):
        os.remove(tmp)

    case_sha: Dict[str, str] = {}
    by_sha: Dict[str, str] = {}
    for cid, text in pf.cases.items():
        if has_report(text):
            sha = text_sha256(text)
            case_sha[cid] = sha
            by_sha[sha] = text
    fallback = no_report_text(pf)
    fallback_sha = text_sha256(fallback)
    by_sha[fallback_sha] = fallback
    # each report's other phrasings (the prompt file's "alternatives" and the paraphrases) that training samples
    variant_cases, variant_by_sha = variant_texts(pf, case_sha)
    # the prompt file's "mirror" section: each report's (and each phrasing's) flipped variants
    mirror_map = getattr(pf, "mirror", None)
    variant_flips = {}
    if mirror_map is not None:
        mirror_cases, mirror_texts = mirror_variants(case_sha, by_sha, mirror_map)
        variant_flips, flipped_variant_texts = mirror_variants({s: s for s in variant_by_sha}, variant_by_sha,
                                                               mirror_map)
        by_sha.update(mirror_texts)
        by_sha.update(flipped_variant_texts)
    by_sha.update(variant_by_sha)

    n_tokens: Dict[str, int] = {}
    todo = []
    for sha in by_sha:
        path = os.path.join(texts_dir, f"{sha}.npz")
        try:
            n_tokens[sha] = load_text_npz(path, max_tokens, encoder.dim)[2]
        except Exception:  # missing, truncated by a kill, or from an older layout: recompute
            todo.append(sha)

    manifest = {
        "format": FORMAT, "version": VERSION,
        "encoder": {**encoder.record(), "max_tokens": int(max_tokens)},
        "prompt_file": os.path.abspath(pf.path) if pf.path else None,
        "prompt_file_sha256": _file_sha256(pf.path),
        "no_report_text": fallback, "no_report_sha256": fallback_sha,
        "cases": {}, "complete": False,
        "created": _previous_created(folder) or _now(), "updated": _now(),
    }

    def write_manifest(complete: bool) -> None:
        manifest["cases"] = {cid: sha for cid, sha in sorted(case_sha.items()) if sha in n_tokens}
        if mirror_map is not None:
            manifest[MIRROR_KEY] = mirror_manifest(mirror_map, mirror_cases, n_tokens)
        manifest[VARIANTS_KEY] = variants_manifest(pf, variant_cases, variant_flips, n_tokens)
        manifest["complete"] = complete
        manifest["updated"] = _now()
        atomic_write_json(os.path.join(folder, MANIFEST), manifest)

    last_write = time.perf_counter()
    with tqdm(total=len(todo), desc=f"embedding with {encoder.encoder_id}", unit="text", disable=not progress) as bar:
        for i in range(0, len(todo), batch_size):
            shas = todo[i:i + batch_size]
            enc = encoder.encode([by_sha[s] for s in shas], max_tokens, batch_size=batch_size)
            for j, sha in enumerate(shas):
                atomic_save_npz(os.path.join(texts_dir, f"{sha}.npz"), features=enc.features[j], mask=enc.mask[j],
                                n_tokens=np.int64(enc.n_tokens[j]))
                n_tokens[sha] = int(enc.n_tokens[j])
            bar.update(len(shas))
            if time.perf_counter() - last_write >= MANIFEST_INTERVAL_S:
                write_manifest(complete=False)
                last_write = time.perf_counter()

    truncated = [s for s in by_sha if n_tokens[s] > max_tokens]
    truncated_set = set(truncated)
    manifest["truncation"] = {
        "max_tokens": int(max_tokens),
        "distinct_texts": len(by_sha),
        "truncated_texts": len(truncated),
        "truncated_cases": sum(1 for s in case_sha.values() if s in truncated_set),
        "longest_tokens": max(n_tokens.values()) if n_tokens else 0,
        "no_report_truncated": fallback_sha in truncated_set,
    }
    manifest["last_run"] = {"computed_texts": len(todo), "reused_texts": len(by_sha) - len(todo),
                            "cases": len(case_sha), "seconds": round(time.perf_counter() - start, 3)}
    write_manifest(complete=True)
    if mark_active:
        atomic_write_json(os.path.join(os.path.abspath(cache_root), ACTIVE), {"active": slug})
    return TextCache.open(folder)
