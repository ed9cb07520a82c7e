import os

# Tests never reach a model hub: without this a missing hub model costs ~45 s of retries.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("nnUNet_compile", "false")
