"""Where a dataset's text caches live, and which of them the trainer and the predictor read."""
import os
from typing import List, Optional

from nnunetv2_tevia.errors import TextCacheError
from nnunetv2_tevia.prompts.dataset_cases import dataset_name
from nnunetv2_tevia.text.cache.format import (MANIFEST, TextCache, describe_record, embed_command, read_json,
                                              record_mismatches)

CACHE_DIRNAME = "tevia_text_cache"
ACTIVE = "active.json"


def dataset_cache_root(dataset_name_or_id) -> str:
    pre = os.environ.get("nnUNet_preprocessed")
    if not pre:
        raise TextCacheError("nnUNet_preprocessed is not set, so the text cache cannot be found: "
                             "export nnUNet_preprocessed=/path/to/nnUNet_preprocessed")
    return os.path.join(pre, dataset_name(dataset_name_or_id, TextCacheError), CACHE_DIRNAME)


def _list_caches(root: str) -> List[str]:
    if not os.path.isdir(root):
        return []
    return sorted(d for d in os.listdir(root) if os.path.isfile(os.path.join(root, d, MANIFEST)))


def recorded_prompt_file(root: str) -> Optional[str]:
    """The prompt file the caches in ``root`` were embedded from (the newest manifest's), for repair commands."""
    found = []
    for slug in _list_caches(root):
        try:
            manifest = read_json(os.path.join(root, slug, MANIFEST), "")
        except (FileNotFoundError, TextCacheError):
            continue
        if isinstance(manifest, dict) and manifest.get("prompt_file"):
            found.append((str(manifest.get("updated")), manifest["prompt_file"]))
    return max(found)[1] if found else None


def _repair(root: str, record: Optional[dict] = None) -> str:
    return embed_command(os.path.basename(os.path.dirname(root)), record, recorded_prompt_file(root))


def read_active(root: str) -> Optional[str]:
    path = os.path.join(root, ACTIVE)
    try:
        doc = read_json(path, _repair(root))
    except FileNotFoundError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("active"), str):
        raise TextCacheError(f"{path} does not name an active cache: re-run {_repair(root)}, which rewrites it")
    return doc["active"]


def _open_complete(folder: str) -> TextCache:
    cache = TextCache.open(folder)
    if not cache.complete:
        raise TextCacheError(f"embedding into {folder} was interrupted before it finished: re-run "
                             f"{cache.fix_command()}, which completes it")
    return cache


def load_active_cache(dataset_name_or_id) -> TextCache:
    root = dataset_cache_root(dataset_name_or_id)
    dataset = os.path.basename(os.path.dirname(root))
    caches = _list_caches(root)
    if not caches:
        raise TextCacheError(f"no text cache for {dataset} in {root}: run {embed_command(dataset_name_or_id)} "
                             f"(after `nnUNetv2_tevia_plan_and_preprocess` or `nnUNetv2_plan_and_preprocess`)")
    active = read_active(root)
    if active is None:
        if len(caches) > 1:
            raise TextCacheError(f"{root} holds several text caches ({', '.join(caches)}) and {ACTIVE} names none: "
                                 f"re-run {_repair(root)} with the -e you want; it marks that one active")
        active = caches[0]
    folder = os.path.join(root, active)
    if not os.path.isdir(folder):
        raise TextCacheError(f"{os.path.join(root, ACTIVE)} names {active!r}, which does not exist in {root}: run "
                             f"{_repair(root)}")
    return _open_complete(folder)


def load_cache_for_record(dataset_name_or_id, record: dict) -> TextCache:
    """The cache made by the encoder ``record`` describes: the active one if it matches, else any other.

    The predictor uses this: a model trained with encoder A still works after someone embedded with B.
    """
    root = dataset_cache_root(dataset_name_or_id)
    active = read_active(root) if os.path.isdir(root) else None
    for slug in sorted(_list_caches(root), key=lambda s: s != active):
        try:
            cache = TextCache.open(os.path.join(root, slug))
        except TextCacheError:
            continue
        if cache.complete and not record_mismatches(cache.encoder_record(), record):
            return cache
    raise TextCacheError(f"no complete text cache in {root} was made by {describe_record(record)}: run "
                         f"{_repair(root, record)}")
