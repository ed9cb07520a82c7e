"""Per-case text in nnU-Net's final validation without copying ``perform_actual_validation``.

That method loads each validation case with ``dataset_val.load_case(k)`` and then runs the sliding
window on it. A subclass of the trainer's dataset class whose ``load_case`` first tells the network
which case comes next is all it takes.
"""
from typing import Callable


def with_load_case_callback(dataset_class: type, on_load_case: Callable[[str], None]) -> type:
    class TextAwareDataset(dataset_class):
        def load_case(self, identifier):
            on_load_case(identifier)
            return super().load_case(identifier)

    TextAwareDataset.__name__ = TextAwareDataset.__qualname__ = f"TextAware{dataset_class.__name__}"
    return TextAwareDataset
