"""One text-cache folder on disk: its manifest, one npz per distinct text, and every check that reads them.

Each problem is a TextCacheError that names the file and the command that fixes it.
"""
import json
import os
import re
from typing import Dict, List, Optional, Tuple

import numpy as np

from nnunetv2_tevia.errors import TextCacheError
from nnunetv2_tevia.prompts.prompt_file import no_report_text, text_sha256
from nnunetv2_tevia.prompts.text_choice import has_report
from nnunetv2_tevia.text.cache.mirror import (MANIFEST_KEY as MIRROR_KEY, cached_mirror_map, flip_key,
                                              manifest_mirror_problem, mirror_map_change)
from nnunetv2_tevia.text.cache.variants import (MANIFEST_KEY as VARIANTS_KEY, manifest_variants_problem,
                                                variants_change)

MANIFEST = "manifest.json"
TEXTS = "texts"
FORMAT = "nnunetv2-tevia-text-cache"
VERSION = 1
RECORD_KEYS = ("encoder_spec", "clip_pretrained", "encoder_id", "revision", "max_tokens", "dim")
# What must agree for cached features to be valid input of a trained network.
COMPATIBILITY_KEYS = ("encoder_id", "revision", "dim", "max_tokens")


def cache_slug(encoder_id: str, revision: str, max_tokens: int) -> str:
    """Folder name of one (encoder, weights, max_tokens); the revision hash keeps two folders that
    happen to share a basename (two local checkpoints called ``model``) apart."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", encoder_id).strip("._") or "encoder"
    return f"{safe[:80]}_{text_sha256(revision)[:8]}_L{int(max_tokens)}"


def embed_command(dataset: str, record: Optional[dict] = None, prompts: Optional[str] = None) -> str:
    """The command that (re)builds a cache, for error messages. ``prompts``: the prompt file it was embedded from
    (the manifest's), so that the repair embeds that file, not the dataset's default one."""
    cmd = f"nnUNetv2_tevia_prompts embed -d {dataset}"
    if record:
        cmd += f" -e {record.get('encoder_spec') or 'default'}"
        if record.get("clip_pretrained"):
            cmd += f" --clip-pretrained {record['clip_pretrained']}"
        if record.get("max_tokens"):
            cmd += f" --max-tokens {record['max_tokens']}"
    if prompts:
        cmd += f" --prompts {prompts}"
    return f"`{cmd}`"


def _dataset_of(folder: str) -> str:
    # <preprocessed>/DatasetXXX_Name/tevia_text_cache/<slug>
    return os.path.basename(os.path.dirname(os.path.dirname(os.path.abspath(folder)))) or "<dataset>"


def read_json(path: str, what_to_run: str):
    try:
        with open(path, "rb") as f:
            return json.loads(f.read().decode("utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise TextCacheError(f"{path} is corrupt or truncated ({type(e).__name__}): re-run {what_to_run}, "
                             f"which repairs it") from None


def load_text_npz(path: str, max_tokens: int, dim: int) -> Tuple[np.ndarray, np.ndarray, int]:
    """(features float16 [L, D], mask bool [L], n_tokens); ValueError/OSError if unreadable or misshapen."""
    with np.load(path, allow_pickle=False) as z:
        feats, mask = z["features"], z["mask"]
        n_tokens = int(z["n_tokens"]) if "n_tokens" in z.files else int(mask.sum())
    if feats.shape != (max_tokens, dim) or feats.dtype != np.float16 or mask.shape != (max_tokens,) \
            or mask.dtype != bool:
        raise ValueError(f"features {feats.shape} {feats.dtype} / mask {mask.shape} {mask.dtype}, expected "
                         f"({max_tokens}, {dim}) float16 / ({max_tokens},) bool")
    return feats, mask, n_tokens


class TextCache:
    def __init__(self, folder: str, manifest: dict):
        self.folder = os.path.abspath(folder)
        self.manifest = manifest
        enc = manifest["encoder"]
        self.encoder_spec: str = enc["encoder_spec"]
        self.clip_pretrained: Optional[str] = enc.get("clip_pretrained")
        self.encoder_id: str = enc["encoder_id"]
        self.revision: str = enc["revision"]
        self.max_tokens: int = int(enc["max_tokens"])
        self.dim: int = int(enc["dim"])
        self.no_report_text: str = manifest["no_report_text"]
        self._cases: Dict[str, str] = manifest["cases"]
        self.case_ids: List[str] = sorted(self._cases)

    @property
    def complete(self) -> bool:
        return bool(self.manifest.get("complete"))

    @property
    def dataset(self) -> str:
        return _dataset_of(self.folder)

    def fix_command(self) -> str:
        return embed_command(self.dataset, self.encoder_record(), self.manifest.get("prompt_file"))

    @classmethod
    def open(cls, folder: str) -> "TextCache":
        path = os.path.join(folder, MANIFEST)
        cmd = embed_command(_dataset_of(folder))
        try:
            manifest = read_json(path, cmd)
        except FileNotFoundError:
            raise TextCacheError(f"no text cache manifest at {path}: run {cmd}") from None
        problem = _manifest_problem(manifest)
        if problem:
            raise TextCacheError(f"{path} is not a valid text cache manifest ({problem}): re-run {cmd}, "
                                 f"which rewrites it")
        return cls(folder, manifest)

    def encoder_record(self) -> dict:
        return {k: self.manifest["encoder"].get(k) for k in RECORD_KEYS}

    def has_case(self, case_id: str) -> bool:
        return case_id in self._cases

    def text_sha256(self, case_id: str) -> Optional[str]:
        return self._cases.get(case_id)

    def text_path(self, sha: str) -> str:
        return os.path.join(self.folder, TEXTS, f"{sha}.npz")

    def _load(self, sha: str, what: str) -> Tuple[np.ndarray, np.ndarray]:
        path = self.text_path(sha)
        if not os.path.isfile(path):
            raise TextCacheError(f"{path} ({what}) is missing from the text cache: re-run {self.fix_command()}, "
                                 f"which repairs it")
        try:
            feats, mask, _ = load_text_npz(path, self.max_tokens, self.dim)
        except Exception as e:  # zip, pickle and shape errors all mean the same thing here
            raise TextCacheError(f"{path} ({what}) is corrupt ({type(e).__name__}: {e}): re-run "
                                 f"{self.fix_command()}, which recomputes it") from None
        return feats, mask

    def features(self, case_id: str) -> Tuple[np.ndarray, np.ndarray]:
        sha = self._cases.get(case_id)
        if sha is None:
            raise TextCacheError(f"case {case_id!r} has no cached text in {os.path.join(self.folder, MANIFEST)}: "
                                 f"write its report in the prompt file (or rely on the no-report text) and run "
                                 f"{self.fix_command()}")
        return self._load(sha, f"text of case {case_id!r}")

    def no_report_features(self) -> Tuple[np.ndarray, np.ndarray]:
        return self._load(self.manifest["no_report_sha256"], "the no-report text")

    @property
    def mirror_map(self):
        """The word map the mirrored texts were made with (a MirrorMap), or None if the cache holds none."""
        return cached_mirror_map(self.manifest, os.path.join(self.folder, MANIFEST))

    def mirror_flips(self, case_id: str) -> Dict[str, str]:
        """{flip key: sha256} of the case's flipped reports that differ from its own (text/cache/mirror.py)."""
        return dict(self.manifest.get(MIRROR_KEY, {}).get("cases", {}).get(case_id, {}))

    def mirrored_features(self, case_id: str, flipped_axes) -> Tuple[np.ndarray, np.ndarray]:
        """The case's report as it reads with ``flipped_axes`` (map axes) flipped; its own where nothing swaps."""
        sha = self.mirror_flips(case_id).get(flip_key(flipped_axes))
        if sha is None:
            return self.features(case_id)
        return self._load(sha, f"text of case {case_id!r} flipped along axes {flip_key(flipped_axes)}")

    def variant_shas(self, case_id: str) -> List[str]:
        """sha256 of each of the case's texts other than its report (text/cache/variants.py)."""
        return list(self.manifest.get(VARIANTS_KEY, {}).get("cases", {}).get(case_id, []))

    def variant_flips(self, sha: str) -> Dict[str, str]:
        """{flip key: sha256} of one phrasing's flipped variants that differ from it."""
        return dict(self.manifest.get(VARIANTS_KEY, {}).get("flips", {}).get(sha, {}))

    def features_of_text(self, sha: str, what: str) -> Tuple[np.ndarray, np.ndarray]:
        return self._load(sha, what)

    def stale_cases(self, pf) -> List[str]:
        """Cases whose text was edited, added or removed in ``pf`` since embedding."""
        current = {cid: text_sha256(t) for cid, t in pf.cases.items() if has_report(t)}
        changed = {cid for cid, sha in current.items() if self._cases.get(cid) != sha}
        removed = set(self._cases) - set(current)
        return sorted(changed | removed)

    def no_report_stale(self, pf) -> bool:
        return self.manifest["no_report_sha256"] != text_sha256(no_report_text(pf))

    def check_up_to_date(self, pf) -> None:
        """TextCacheError if the prompt file changed since embedding (texts would silently disagree)."""
        stale = self.stale_cases(pf)
        parts = []
        if stale:
            shown = ", ".join(repr(c) for c in stale[:5]) + (f" and {len(stale) - 5} more" if len(stale) > 5 else "")
            parts.append(f"{len(stale)} case text(s) changed since embedding ({shown})")
        if self.no_report_stale(pf):
            parts.append("the no-report text changed")
        mirror = mirror_map_change(self.mirror_map, getattr(pf, "mirror", None))
        if mirror:
            parts.append(mirror)
        variants = variants_change(self.manifest, pf)
        if variants:
            parts.append(variants)
        if parts:
            where = pf.path or "the prompt file"
            raise TextCacheError(f"text cache {self.folder} is stale for {where}: {'; '.join(parts)}: run "
                                 f"{self.fix_command()} (only the changed texts are recomputed)")


def _manifest_problem(m) -> Optional[str]:
    if not isinstance(m, dict):
        return "not a JSON object"
    if m.get("format") != FORMAT:
        return f"format is {m.get('format')!r}, expected {FORMAT!r}"
    if m.get("version") != VERSION:
        return f"version {m.get('version')!r} is not supported (expected {VERSION})"
    enc = m.get("encoder")
    if not isinstance(enc, dict) or any(k not in enc for k in RECORD_KEYS):
        return "encoder record incomplete"
    if not isinstance(m.get("cases"), dict) or not isinstance(m.get("no_report_text"), str) \
            or not isinstance(m.get("no_report_sha256"), str):
        return "cases or no-report text missing"
    if MIRROR_KEY in m and manifest_mirror_problem(m[MIRROR_KEY]):
        return manifest_mirror_problem(m[MIRROR_KEY])
    if VARIANTS_KEY in m:
        return manifest_variants_problem(m[VARIANTS_KEY])
    return None


def describe_record(record: dict) -> str:
    return (f"{record.get('encoder_id')} (revision {str(record.get('revision'))[:20]}, {record.get('dim')}-dim, "
            f"{record.get('max_tokens')} tokens)")


def record_mismatches(cache_record: dict, required: dict) -> List[str]:
    diffs = [k for k in COMPATIBILITY_KEYS if required.get(k) is not None and cache_record.get(k) != required.get(k)]
    # A local folder is named after its basename, which differs between machines; identical weight
    # hashes mean the same encoder whatever the folder is called.
    same_weights = str(cache_record.get("revision", "")).startswith("sha256:") \
        and cache_record.get("revision") == required.get("revision")
    return [k for k in diffs if not (k == "encoder_id" and same_weights)]
