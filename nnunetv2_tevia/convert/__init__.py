"""Convert LViT / Ariadne's Thread / TeViA style folders into nnU-Net raw datasets with a prompt file."""
from nnunetv2_tevia.convert.converter import ConversionReport, convert_dataset, format_report, sanitize_case_id
from nnunetv2_tevia.convert.layouts import SourceLayout, SourceSplit, detect_layout
from nnunetv2_tevia.errors import ConversionError

__all__ = ["ConversionError", "ConversionReport", "SourceLayout", "SourceSplit", "convert_dataset", "detect_layout",
           "format_report", "sanitize_case_id"]
