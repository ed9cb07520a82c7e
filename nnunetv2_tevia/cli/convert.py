"""``nnUNetv2_tevia_convert``: LViT / Ariadne's Thread / TeViA style folder -> nnU-Net raw dataset + prompt file."""
import argparse
import sys

from nnunetv2_tevia.cli._common import exit_on_user_error

_LAYOUTS = """\
Source layouts (detected automatically):

  shared-data (the layout of ../shared/data, Ariadne's Thread CSVs):
    SOURCE/train/images/<name>.png|jpg   SOURCE/train/masks/mask_<name>.png or <name>.png   SOURCE/train.csv
    SOURCE/val/...   SOURCE/val.csv      (test/ + test.csv likewise)
  LViT download (QaTa-COV19, MosMedData+, MoNuSeg):
    SOURCE/Train_Folder/img/   SOURCE/Train_Folder/labelcol/   Train_text.xlsx (inside Train_Folder or in SOURCE)
    Val_Folder, Test_Folder likewise; a combined table such as SOURCE/Train_Val_text.xlsx serves both splits.

Tables (CSV with or without BOM, or XLSX) key each row by the image file name, its stem, or the mask file
name (mask_<name>.png); the text column is Description (or Text, Report, Caption, ... ; see --text-column).

Splits: train -> imagesTr/labelsTr; val -> imagesTs/labelsTs (labels kept for evaluation);
test -> see --test-split-into. Masks {0,255} become labels {0,1}. Greyscale images give one channel
(<case>_0000.png), colour images three (_0000, _0001, _0002 = R, G, B). The prompt file
tevia_prompts.json holds the text of every converted case.

Example:
  nnUNetv2_tevia_convert -i ../shared/data/qata_cov19_dev -d 501 -n QaTaCOV19dev --size 224
"""


@exit_on_user_error
def convert_entry():
    from nnunetv2_tevia.convert import convert_dataset, format_report

    parser = argparse.ArgumentParser(
        description="Turn an LViT / Ariadne's Thread / TeViA style image-mask-text folder into an nnU-Net raw "
                    "dataset ($nnUNet_raw/DatasetXXX_NAME) with its prompt file tevia_prompts.json.",
        epilog=_LAYOUTS, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-i", dest="source", required=True,
                        help="[REQUIRED] Source folder (holds train/ + train.csv, or Train_Folder/).")
    parser.add_argument("-d", dest="dataset_id", type=int, required=True,
                        help="[REQUIRED] Dataset id (1-999); the output is DatasetXXX_NAME.")
    parser.add_argument("-n", dest="name", required=True,
                        help="[REQUIRED] Dataset name (letters, digits, '_' and '-'), e.g. QaTaCOV19.")
    parser.add_argument("-o", dest="output_root", default=None,
                        help="[OPTIONAL] Folder to write DatasetXXX_NAME into. Default: $nnUNet_raw.")
    parser.add_argument("--size", type=int, default=None,
                        help="[OPTIONAL] Resample every image (bilinear) and mask (nearest) to SIZE x SIZE. "
                             "Default: keep the source size.")
    parser.add_argument("--overwrite", action="store_true",
                        help="[OPTIONAL] Replace an existing DatasetXXX_NAME. Without it an existing folder is an "
                             "error.")
    parser.add_argument("--label-name", default="lesion",
                        help="[OPTIONAL] Name of the foreground label in dataset.json. Default: lesion.")
    parser.add_argument("--test-split-into", choices=("skip", "imagesTs"), default="skip",
                        help="[OPTIONAL] Where a test split (test/, Test_Folder) goes. Default: skip, so the held-out "
                             "test set stays untouched and imagesTs holds only the val split; imagesTs adds it "
                             "there (tevia_convert_sources.json records each case's split).")
    parser.add_argument("--id-column", default=None,
                        help="[OPTIONAL] Table column with the image or mask file name. Default: the first of "
                             "Image, Image_name, img, filename, name, mask, id ... that exists.")
    parser.add_argument("--text-column", default=None,
                        help="[OPTIONAL] Table column with the report text. Default: the first of Description, "
                             "Text, Report, Caption, Prompt, Sentence ... that exists.")
    parser.add_argument("--channels", choices=("auto", "gray", "rgb"), default="auto",
                        help="[OPTIONAL] Channel layout. Default: auto (rgb if any sampled image has distinct "
                             "colour channels, else one grey channel).")
    parser.add_argument("--keep-images-without-text", action="store_true",
                        help="[OPTIONAL] Also convert images that no table row describes (they get the prompt "
                             "file's no-report text). Default: leave them out and count them.")
    parser.add_argument("--limit", type=int, default=None,
                        help="[OPTIONAL] Convert at most this many cases per split (quick looks, tests).")
    parser.add_argument("-np", dest="num_processes", type=int, default=None,
                        help="[OPTIONAL] Worker processes. Default: number of CPU cores, at most 8.")
    parser.add_argument("--mirror", choices=("2d",), default=None,
                        help="[OPTIONAL] Write the word map \"mirror\": {\"preset\": \"2d\"} into the prompt file, so "
                             "that nnUNetTrainerTeViA mirrors each image with its report's left/right, upper/lower "
                             "words swapped: for images without a fixed orientation (endoscopy, skin); leave it "
                             "out for chest radiographs (docs/prompt_format.md, Mirror word maps). Default: no map.")
    parser.add_argument("--no-progress", action="store_true", help="[OPTIONAL] Hide the progress bar.")
    args = parser.parse_args()

    report = convert_dataset(
        args.source, args.dataset_id, args.name, output_root=args.output_root, size=args.size,
        overwrite=args.overwrite, label_name=args.label_name, test_split_into=args.test_split_into,
        id_column=args.id_column, text_column=args.text_column, channels=args.channels,
        keep_images_without_text=args.keep_images_without_text, limit=args.limit,
        num_processes=args.num_processes, progress=not args.no_progress, mirror_preset=args.mirror)
    print(format_report(report))
    sys.stdout.flush()


if __name__ == "__main__":
    convert_entry()
