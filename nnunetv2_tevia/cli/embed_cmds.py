"""``nnUNetv2_tevia_prompts stats`` and ``nnUNetv2_tevia_prompts embed``: count tokens, fill the text cache."""
import argparse
import sys
import time

import numpy as np

from nnunetv2_tevia.errors import PromptFileError

DEFAULT_MAX_TOKENS = 24  # the reference implementation's length


def _add_encoder_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", dest="dataset", required=True,
                   help="[REQUIRED] dataset name or id (e.g. 3 or Dataset003_Liver)")
    p.add_argument("--prompts", default=None,
                   help="[OPTIONAL] prompt file to use instead of $nnUNet_raw/DatasetXXX_Name/tevia_prompts.json")
    add_encoder_arguments(p)


def add_encoder_arguments(p: argparse.ArgumentParser) -> None:
    """The text-encoder options shared by embed, stats and nnUNetv2_tevia_plan_and_preprocess."""
    p.add_argument("-e", dest="encoder", default="default",
                   help="[OPTIONAL] text encoder: default (packaged all-MiniLM-L6-v2), hf:<hub name or local "
                        "folder>, or clip:<open_clip model name>. Default: default")
    p.add_argument("--clip-pretrained", default=None,
                   help="[OPTIONAL] for clip: encoders, an open_clip pretrained tag or a local weights file")
    p.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS,
                   help=f"[OPTIONAL] tokens kept per text (longer texts are cut and reported). "
                        f"Default: {DEFAULT_MAX_TOKENS}")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="[OPTIONAL] let transformers run model code shipped with an hf: model (needed by "
                        "CXR-BERT). Off by default: that code runs unreviewed on this machine")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="[OPTIONAL] where the encoder runs. Default: auto (cuda if available)")


def load_checked_prompts(dataset, prompts_arg):
    """Validate the prompt file against the dataset; raise the first error as one line, print warnings."""
    from nnunetv2_tevia.prompts.prompt_file import load_prompts
    from nnunetv2_tevia.prompts.prompt_ops import validate_prompts

    report = validate_prompts(dataset, prompts_arg)
    for line in report.warnings:
        print(f"warning: {line}", file=sys.stderr)
    if not report.ok:
        more = f" (and {len(report.errors) - 1} more: run `nnUNetv2_tevia_prompts validate -d {dataset}`)" \
            if len(report.errors) > 1 else ""
        raise PromptFileError(report.errors[0] + more)
    return load_prompts(report.path)


def _load_encoder(args):
    from nnunetv2_tevia.text.encoders import load_encoder

    return load_encoder(args.encoder, clip_pretrained=args.clip_pretrained,
                        trust_remote_code=args.trust_remote_code, device=args.device)


def prompt_stats(pf, encoder, max_tokens: int) -> dict:
    from nnunetv2_tevia.prompts.prompt_file import no_report_text
    from nnunetv2_tevia.prompts.text_choice import has_report

    texts = [t for t in pf.cases.values() if has_report(t)]
    distinct = sorted(set(texts))
    counts = np.asarray(encoder.count_tokens(distinct) if distinct else [], dtype=np.int64)
    per_case = dict(zip(distinct, counts.tolist()))
    case_counts = np.asarray([per_case[t] for t in texts], dtype=np.int64)
    nr = no_report_text(pf)
    return {
        "cases": len(pf.cases), "with_text": len(texts), "distinct": len(distinct),
        "duplicates": len(texts) - len(distinct),
        "tokens": ({"min": int(case_counts.min()), "median": float(np.median(case_counts)),
                    "p95": float(np.percentile(case_counts, 95)), "max": int(case_counts.max())}
                   if len(case_counts) else None),
        "truncated_cases": int((case_counts > max_tokens).sum()),
        "truncated_distinct": int((counts > max_tokens).sum()),
        "no_report_text": nr, "no_report_tokens": encoder.count_tokens([nr])[0],
        "phrasings": _phrasing_stats(pf, encoder, max_tokens),
    }


def _phrasing_stats(pf, encoder, max_tokens: int) -> dict:
    """The texts training samples besides the reports: alternatives and paraphrases (prompts/paraphrase.py)."""
    from nnunetv2_tevia.prompts.phrasings import case_texts

    per_case = [case_texts(pf, c)[1:] for c in pf.cases]
    distinct = sorted({t for ts in per_case for t in ts})
    counts = np.asarray(encoder.count_tokens(distinct) if distinct else [], dtype=np.int64)
    return {"alternatives": sum(len(v) for v in pf.alternatives.values()),
            "per_case_mean": float(np.mean([len(ts) for ts in per_case])) if per_case else 0.0,
            "distinct": len(distinct), "truncated_distinct": int((counts > max_tokens).sum()),
            "settings": pf.paraphrase_settings.to_json()}


def _run_stats(args) -> int:
    pf = load_checked_prompts(args.dataset, args.prompts)
    encoder = _load_encoder(args)
    s = prompt_stats(pf, encoder, args.max_tokens)
    print(f"{pf.path}: {s['cases']} case(s), {s['with_text']} with text, {s['distinct']} distinct text(s), "
          f"{s['duplicates']} duplicate(s)")
    if s["tokens"]:
        t = s["tokens"]
        print(f"tokens per case with {encoder.encoder_id} (special tokens included): min {t['min']}, median "
              f"{t['median']:g}, p95 {t['p95']:g}, max {t['max']}")
    print(f"--max-tokens {args.max_tokens}: {s['truncated_cases']} case(s) ({s['truncated_distinct']} distinct "
          f"text(s)) would be truncated; no-report text {s['no_report_text']!r} has {s['no_report_tokens']} tokens")
    ph = s["phrasings"]
    print(f"other phrasings sampled in training: {ph['alternatives']} alternative(s) from the file, "
          f"{ph['per_case_mean']:.1f} per case with the paraphrases ({ph['settings']['variants']} per text, preset "
          f"{ph['settings']['preset']!r}), {ph['distinct']} distinct, {ph['truncated_distinct']} truncated at "
          f"--max-tokens {args.max_tokens}")
    if pf.mirror is not None:
        from nnunetv2_tevia.prompts.mirror_words import mirror_summary

        print("\n".join(mirror_summary(pf.cases, pf.mirror)))
    return 0


def _run_embed(args) -> int:
    pf = load_checked_prompts(args.dataset, args.prompts)  # before importing torch: a typo fails in a second
    from nnunetv2_tevia.text.cache import dataset_cache_root
    from nnunetv2_tevia.text.cache.lock import cache_lock
    from nnunetv2_tevia.text.embed import embed_prompts

    root = dataset_cache_root(args.dataset)
    with cache_lock(root):  # taken before the encoder loads: a second embed is refused at once
        encoder = _load_encoder(args)
        t0 = time.perf_counter()
        cache = embed_prompts(pf, root, encoder, args.max_tokens, batch_size=args.batch_size,
                              progress=not args.no_progress)
        seconds = time.perf_counter() - t0
    run, trunc = cache.manifest["last_run"], cache.manifest["truncation"]
    rate = (f"{run['cases'] / seconds:.0f} prompts/s, {run['computed_texts'] / seconds:.0f} computed texts/s"
            if run["computed_texts"] else "nothing to compute")
    print(f"embedded {run['cases']} case(s) as {trunc['distinct_texts']} distinct text(s) with {cache.encoder_id}: "
          f"{run['computed_texts']} computed, {run['reused_texts']} reused, {seconds:.1f} s ({rate}); "
          f"{trunc['truncated_cases']} case(s) / {trunc['truncated_texts']} text(s) longer than "
          f"{trunc['max_tokens']} tokens were truncated (longest {trunc['longest_tokens']})")
    print(f"active text cache: {cache.folder}")
    return 0


def add_stats_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("stats", help="count cases, distinct texts and token lengths for an encoder")
    _add_encoder_options(p)
    p.set_defaults(func=_run_stats)
    return p


def add_embed_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("embed", help="embed the prompt file into the dataset's text cache "
                                            "(only new or changed texts are computed)")
    _add_encoder_options(p)
    p.add_argument("--batch-size", type=int, default=64, help="[OPTIONAL] texts per encoder call. Default: 64")
    p.add_argument("--no-progress", action="store_true", help="[OPTIONAL] hide the progress bar")
    p.set_defaults(func=_run_embed)
    return p
