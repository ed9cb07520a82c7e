import os

# Tests never reach a model hub: without this a missing hub model costs ~45 s of retries.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("nnUNet_compile", "false")
# A user's NNUNETV2_TEVIA_ALLOW_NO_REPORT=1 lets a forward without text through (nnunet_seam.py): the tests and the
# commands they start run without it; the tests of the switch set it themselves.
os.environ.pop("NNUNETV2_TEVIA_ALLOW_NO_REPORT", None)

# The test trainers (tests/tevia_test_trainers.py) are found by nnU-Net's -tr search, in this process and in the
# commands the tests start, but never by a user's: they are registered for the test session only.
TESTS = os.path.dirname(os.path.abspath(__file__))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (TESTS, os.environ.get("PYTHONPATH", "")) if p)
os.environ["nnUNet_extTrainer"] = os.pathsep.join(
    p for p in (os.environ.get("nnUNet_extTrainer", ""), os.path.join(TESTS, "ext_trainer")) if p)
