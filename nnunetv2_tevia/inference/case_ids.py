"""Which case each item of a prediction is: nnU-Net's data iterators do not say, so the predictor names it."""
import os
from typing import Iterable, Sequence

CASE_KEY = "tevia_case"  # the case id each item of a data iterator carries (nnU-Net reads only its own keys)


def case_id_from_file(first_channel_file: str, file_ending: str) -> str:
    # nnU-Net's own rule: strip the file ending and the _XXXX channel suffix
    return os.path.basename(first_channel_file)[:-(len(file_ending) + 5)]


def array_case(i: int) -> str:
    """The case id of the i-th in-memory array of a call."""
    return f"__array_{i}"


def with_case_ids(items: Iterable[dict], case_ids: Sequence[str]):
    """nnU-Net's data iterators yield their items in the order of their input lists: name each item's case on it
    there, where both are known."""
    for item, case_id in zip(items, case_ids):
        yield dict(item, **{CASE_KEY: case_id})
