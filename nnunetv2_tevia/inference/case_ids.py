"""Which case each item of a prediction is: nnU-Net's data iterators do not say, so the predictor names it."""
import os


def case_id_from_file(first_channel_file: str, file_ending: str) -> str:
    # nnU-Net's own rule: strip the file ending and the _XXXX channel suffix
    return os.path.basename(first_channel_file)[:-(len(file_ending) + 5)]


def array_case(i: int) -> str:
    """The case id of the i-th in-memory array of a call."""
    return f"__array_{i}"
