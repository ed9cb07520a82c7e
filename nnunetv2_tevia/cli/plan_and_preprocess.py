"""``nnUNetv2_tevia_plan_and_preprocess``: check the prompts, run nnU-Net's planning and preprocessing, embed.

The prompt file is checked first because preprocessing can take hours and a typo in the prompts
should not surface only afterwards. Every option this command does not know is passed unchanged to
``nnUNetv2_plan_and_preprocess``, which runs in this process (no dependence on PATH).
"""
import argparse
import os
import sys

from nnunetv2_tevia.cli._common import exit_on_user_error
from nnunetv2_tevia.cli.embed_cmds import add_encoder_arguments, load_checked_prompts
from nnunetv2_tevia.errors import PromptFileError


def _dataset_id(dataset: str) -> int:
    from nnunetv2_tevia.prompts.dataset_cases import dataset_folder

    name = os.path.basename(dataset_folder(dataset))
    try:
        return int(name[len("Dataset"):len("Dataset") + 3])
    except ValueError:
        raise PromptFileError(f"{name} is not named DatasetXXX_Name: nnU-Net needs that name, rename the "
                              f"folder") from None


def run_nnunet_plan_and_preprocess(dataset_ids, passthrough) -> None:
    from nnunetv2.experiment_planning.plan_and_preprocess_entrypoints import plan_and_preprocess_entry as nnunet_entry

    saved = sys.argv
    sys.argv = ["nnUNetv2_plan_and_preprocess", "-d", *map(str, dataset_ids), *passthrough]
    try:
        nnunet_entry()
    finally:
        sys.argv = saved


@exit_on_user_error
def plan_and_preprocess_entry(argv=None):
    parser = argparse.ArgumentParser(
        prog="nnUNetv2_tevia_plan_and_preprocess", allow_abbrev=False,
        description="Check the TeViA prompt file(s), run nnUNetv2_plan_and_preprocess, then embed the report "
                    "texts into the text cache. Every other option (-c, -np, -pl, --verify_dataset_integrity, "
                    "...) goes to nnUNetv2_plan_and_preprocess unchanged.")
    parser.add_argument("-d", dest="datasets", nargs="+", required=True,
                        help="[REQUIRED] dataset id(s) or name(s)")
    parser.add_argument("--prompts", default=None,
                        help="[OPTIONAL] prompt file instead of $nnUNet_raw/DatasetXXX_Name/tevia_prompts.json "
                             "(one dataset only)")
    add_encoder_arguments(parser)
    parser.add_argument("--embed-batch-size", type=int, default=64,
                        help="[OPTIONAL] texts per encoder call. Default: 64")
    args, passthrough = parser.parse_known_args(argv)
    if args.prompts and len(args.datasets) > 1:
        raise PromptFileError("--prompts names one prompt file but -d lists several datasets: run one dataset "
                              "at a time, or put each prompt file at its default place")

    prompt_files = {d: load_checked_prompts(d, args.prompts) for d in args.datasets}
    # Load the encoder before the long step too: a missing model should fail now, not in hours.
    from nnunetv2_tevia.text.encoders import load_encoder

    encoder = load_encoder(args.encoder, clip_pretrained=args.clip_pretrained,
                           trust_remote_code=args.trust_remote_code, device=args.device)
    encoder.check_max_tokens(args.max_tokens)

    run_nnunet_plan_and_preprocess([_dataset_id(d) for d in args.datasets], passthrough)

    from nnunetv2_tevia.text.cache import dataset_cache_root
    from nnunetv2_tevia.text.cache.lock import cache_lock
    from nnunetv2_tevia.text.embed import embed_prompts

    for d, pf in prompt_files.items():
        with cache_lock(dataset_cache_root(d)):
            cache = embed_prompts(pf, dataset_cache_root(d), encoder, args.max_tokens,
                                  batch_size=args.embed_batch_size)
        trunc = cache.manifest["truncation"]
        print(f"{d}: text cache {cache.folder}: {len(cache.case_ids)} case(s), {trunc['distinct_texts']} distinct "
              f"text(s), {trunc['truncated_cases']} case(s) truncated at {trunc['max_tokens']} tokens")


if __name__ == "__main__":
    plan_and_preprocess_entry()
