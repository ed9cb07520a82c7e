"""`nnUNetv2_tevia_prompts`: create, fill, check (and, via the text helper's commands, count and embed) prompt files."""
import argparse
import importlib
import sys

from nnunetv2_tevia.cli._common import exit_on_user_error
from nnunetv2_tevia.prompts.prompt_ops import import_table, init_prompts, shorten, validate_prompts


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", dest="dataset", required=True,
                   help="[REQUIRED] dataset name or id (e.g. 3 or Dataset003_Liver), or a raw dataset folder")
    p.add_argument("--prompts", default=None,
                   help="[OPTIONAL] prompt file to use instead of $nnUNet_raw/DatasetXXX_Name/tevia_prompts.json")


def _run_init(args) -> int:
    r = init_prompts(args.dataset, args.prompts, force=args.force)
    print(f"wrote {r.path}: {r.n_training} training and {r.n_test} test case(s) with empty texts, "
          f"{r.n_classes} class(es) with empty descriptions")
    print(f"next: write the reports into it, or run `nnUNetv2_tevia_prompts import -d {args.dataset} --csv TABLE`; "
          f"then `nnUNetv2_tevia_prompts validate -d {args.dataset}`")
    if r.n_training == 0:
        print("warning: no training images found in imagesTr", file=sys.stderr)
    return 0


def _run_import(args) -> int:
    r = import_table(args.dataset, args.csv, args.id_column, args.text_column, args.prompts, force=args.force,
                     alternative_columns=args.alternative_columns)
    print(f"{'created' if r.created else 'updated'} {r.path} from {args.csv}")
    print(f"matched {r.matched} of {r.rows} row(s): {r.added} new, {r.replaced} replaced, {r.unchanged} unchanged"
          + (f", {r.kept_different} kept although the table differs (pass --force to replace them)"
             if r.kept_different else ""))
    if args.alternative_columns:
        print(f"alternative phrasings added from {', '.join(args.alternative_columns)}: {r.alternatives_added}")
    if r.unmatched:
        print(f"unmatched rows ({len(r.unmatched)}): {shorten(r.unmatched)}")
    print(f"cases without text: {len(r.training_without_text)} training"
          + (f" ({shorten(r.training_without_text)})" if r.training_without_text else "")
          + f", {len(r.test_without_text)} test")
    return 0


def _run_validate(args) -> int:
    report = validate_prompts(args.dataset, args.prompts, strict=args.strict)
    for line in report.errors:
        print(f"error: {line}", file=sys.stderr)
    for line in report.warnings:
        print(f"warning: {line}", file=sys.stderr)
    for line in report.notes:
        print(f"note: {line}")
    if not report.ok:
        print(f"{report.path}: {len(report.errors)} problem(s)", file=sys.stderr)
        return 1
    fallback = repr(report.no_report_text) if report.no_report_text else "none"
    print(f"OK {report.path}: {report.n_training_with_text}/{report.n_training} training and "
          f"{report.n_test_with_text}/{report.n_test} test case(s) with text, {report.n_classes} class(es), "
          f"no-report text: {fallback}")
    return 0


def _register_text_commands(subparsers) -> None:
    try:
        embed_cmds = importlib.import_module("nnunetv2_tevia.cli.embed_cmds")
    except ModuleNotFoundError as e:
        # Only a missing embed_cmds module is tolerated; a broken dependency inside it must surface.
        if e.name != "nnunetv2_tevia.cli.embed_cmds":
            raise
        return
    embed_cmds.add_stats_parser(subparsers)
    embed_cmds.add_embed_parser(subparsers)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nnUNetv2_tevia_prompts",
        description="Create, fill and check a dataset's TeViA prompt file (tevia_prompts.json). "
                    "See docs/prompt_format.md.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", help="write a template listing every case of imagesTr and imagesTs")
    _add_common(p)
    p.add_argument("--force", action="store_true", help="[OPTIONAL] replace an existing prompt file")
    p.set_defaults(func=_run_init)

    p = sub.add_parser("import", help="merge the texts of a CSV or XLSX table into the prompt file")
    _add_common(p)
    p.add_argument("--csv", required=True,
                   help="[REQUIRED] table with a key and a text column: .csv (UTF-8, BOM allowed) or .xlsx")
    p.add_argument("--id-column", default="Image",
                   help="[OPTIONAL] column holding the case id, image file name or mask_<name> file name. "
                        "Default: Image")
    p.add_argument("--text-column", default="Description",
                   help="[OPTIONAL] column holding the report text. Default: Description")
    p.add_argument("--alternative-columns", nargs="+", default=[], metavar="COLUMN",
                   help="[OPTIONAL] columns holding other phrasings of each report (e.g. Kvasir-SEG's p1 ... p9_0); "
                        "they go into the case's \"alternatives\", which training samples from")
    p.add_argument("--force", action="store_true",
                   help="[OPTIONAL] replace texts that already exist in the prompt file and differ from the table")
    p.set_defaults(func=_run_import)

    p = sub.add_parser("validate", help="check the prompt file against the dataset")
    _add_common(p)
    p.add_argument("--strict", action="store_true",
                   help="[OPTIONAL] make case ids and class names unknown to the dataset errors, not warnings")
    p.set_defaults(func=_run_validate)

    _register_text_commands(sub)
    return parser


@exit_on_user_error
def prompts_entry(argv=None):
    args = build_parser().parse_args(argv)
    rc = args.func(args)
    if rc:
        sys.exit(rc)


if __name__ == "__main__":
    prompts_entry()
