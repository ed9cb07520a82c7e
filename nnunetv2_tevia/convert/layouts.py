"""Find the splits of a source folder laid out the way LViT, Ariadne's Thread and TeViA ship their data.

Two layouts are recognised (see ``docs/convert.md``):

* shared-data: ``<split>/images/<name>.png|jpg``, ``<split>/masks/mask_<name>.png`` (or the image's
  stem), and a table ``<split>.csv`` (or ``.xlsx``) beside the split folder;
* LViT: ``<Split>_Folder/img``, ``<Split>_Folder/labelcol`` and ``<Split>_text.xlsx`` inside the split
  folder or beside it; a combined table such as ``Train_Val_text.xlsx`` serves every split it names.
"""
import os
import re
from dataclasses import dataclass

from nnunetv2_tevia.errors import ConversionError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
TABLE_EXTENSIONS = (".csv", ".xlsx")

# Folder names in the wild -> what the split is for. Anything else is listed as ignored.
SPLIT_ROLES = {
    "train": "train", "training": "train", "tr": "train",
    "val": "val", "valid": "val", "validation": "val",
    "test": "test", "testing": "test", "ts": "test",
}


@dataclass(frozen=True)
class SourceSplit:
    name: str                    # folder's split name as found ("train", "Val", ...)
    role: str                    # "train" | "val" | "test"
    images_dir: str
    masks_dir: str | None        # None: the split ships no masks
    tables: tuple[str, ...]      # every table whose rows may describe this split


@dataclass(frozen=True)
class SourceLayout:
    kind: str                    # "shared-data" | "lvit"
    root: str
    splits: tuple[SourceSplit, ...]
    ignored: tuple[str, ...]     # split-like folders with a name we do not know the purpose of


def list_images(folder: str) -> list[str]:
    """File names of the images in ``folder``, sorted so that conversion order is reproducible."""
    return sorted(f for f in os.listdir(folder)
                  if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".")
                  and os.path.isfile(os.path.join(folder, f)))


def _tables_named(folder: str, stem: str) -> list[str]:
    return [os.path.join(folder, f) for f in sorted(os.listdir(folder))
            if os.path.splitext(f)[0].lower() == stem.lower() and f.lower().endswith(TABLE_EXTENSIONS)]


def _shared_splits(root: str) -> tuple[list[SourceSplit], list[str]]:
    splits, ignored = [], []
    for d in sorted(os.listdir(root)):
        images_dir = os.path.join(root, d, "images")
        if not os.path.isdir(images_dir):
            continue
        role = SPLIT_ROLES.get(d.lower())
        if role is None:
            ignored.append(d)
            continue
        masks_dir = os.path.join(root, d, "masks")
        tables = _tables_named(root, d) + _tables_named(os.path.join(root, d), d)
        splits.append(SourceSplit(d, role, images_dir, masks_dir if os.path.isdir(masks_dir) else None,
                                  tuple(tables)))
    return splits, ignored


_LVIT_FOLDER = re.compile(r"^(?P<split>.+)_folder$", re.IGNORECASE)


def _lvit_tables_for(split: str, folders: list[str]) -> list[str]:
    # LViT's QaTa release keeps one Train_Val_text.xlsx for two splits, so a table serves every split
    # whose name is one of the words of its file name.
    found = []
    for folder in folders:
        for f in sorted(os.listdir(folder)):
            stem, ext = os.path.splitext(f)
            words = [w.lower() for w in re.split(r"[_\-\s]+", stem)]
            if ext.lower() in TABLE_EXTENSIONS and "text" in words and split.lower() in words:
                found.append(os.path.join(folder, f))
    return found


def _lvit_splits(root: str) -> tuple[list[SourceSplit], list[str]]:
    splits, ignored = [], []
    for d in sorted(os.listdir(root)):
        m = _LVIT_FOLDER.match(d)
        images_dir = os.path.join(root, d, "img")
        if m is None or not os.path.isdir(images_dir):
            continue
        name = m.group("split")
        role = SPLIT_ROLES.get(name.lower())
        if role is None:
            ignored.append(d)
            continue
        masks_dir = os.path.join(root, d, "labelcol")
        tables = _lvit_tables_for(name, [os.path.join(root, d), root])
        splits.append(SourceSplit(name, role, images_dir, masks_dir if os.path.isdir(masks_dir) else None,
                                  tuple(tables)))
    return splits, ignored


def detect_layout(source_dir: str) -> SourceLayout:
    root = os.path.abspath(source_dir)
    if not os.path.isdir(root):
        raise ConversionError(f"{source_dir}: no such folder. Pass the folder that holds the split folders "
                              f"(train/ and train.csv, or Train_Folder/) with -i.")
    shared, shared_ignored = _shared_splits(root)
    lvit, lvit_ignored = _lvit_splits(root)
    if shared and lvit:
        raise ConversionError(
            f"{root} holds both layouts ({', '.join(s.name for s in shared)} with images/ and "
            f"{', '.join(s.name + '_Folder' for s in lvit)} with img/). Point -i at a folder with one of them.")
    if shared:
        return SourceLayout("shared-data", root, tuple(shared), tuple(shared_ignored))
    if lvit:
        return SourceLayout("lvit", root, tuple(lvit), tuple(lvit_ignored))
    unknown = shared_ignored + lvit_ignored
    hint = (f" Folders {unknown} look like splits but their names are not one of "
            f"{sorted(SPLIT_ROLES)}; rename them." if unknown else "")
    raise ConversionError(
        f"{root}: found neither <split>/images/ + <split>.csv (shared-data layout) nor "
        f"<Split>_Folder/img/ + <Split>_text.xlsx (LViT layout). It contains: "
        f"{sorted(os.listdir(root))[:20]}.{hint}")
