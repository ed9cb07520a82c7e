"""The text-embedding cache of a dataset: reports are embedded once, the trainer and predictor read them.

Layout (one sub-folder per encoder and max_tokens, so switching encoders never overwrites anything)::

    $nnUNet_preprocessed/DatasetXXX_Name/tevia_text_cache/
        active.json                      {"active": "<slug>"}
        <slug>/manifest.json             encoder record, prompt file hash, case id -> text sha256
        <slug>/texts/<sha256>.npz        features float16 [L, D], mask bool [L], n_tokens (one file per distinct text)

Every record needed to tell whether the cache still matches the model and the prompt file is in the
manifest; every problem is a TextCacheError that names the file and the command that fixes it.
"""
from nnunetv2_tevia.text.cache.dataset import (ACTIVE, CACHE_DIRNAME, dataset_cache_root, load_active_cache,
                                               load_cache_for_record, read_active)
from nnunetv2_tevia.text.cache.format import (COMPATIBILITY_KEYS, FORMAT, MANIFEST, RECORD_KEYS, TEXTS, VERSION,
                                              TextCache, cache_slug, embed_command, load_text_npz,
                                              record_mismatches)

__all__ = ["ACTIVE", "CACHE_DIRNAME", "COMPATIBILITY_KEYS", "FORMAT", "MANIFEST", "RECORD_KEYS", "TEXTS", "VERSION",
           "TextCache", "cache_slug", "dataset_cache_root", "embed_command", "load_active_cache",
           "load_cache_for_record", "load_text_npz", "read_active", "record_mismatches"]
