"""What a checkpoint must agree on with the trainer that loads it: the design and the text encoder."""
import pytest

from nnunetv2_tevia.errors import TeViAError, TrainingSetupError
from nnunetv2_tevia.model.config import TeViAConfig
from nnunetv2_tevia.training.checkpoints import check_checkpoint_text

ENCODER = {"encoder_spec": "default", "encoder_id": "default:all-MiniLM-L6-v2", "revision": "sha256:abc",
           "max_tokens": 24, "dim": 384}


def _plans(**kw) -> dict:
    return TeViAConfig(text_tokens=24, text_dim=384, encoder=dict(ENCODER), **kw).to_dict()


def test_same_design_and_encoder_pass():
    check_checkpoint_text(_plans(), _plans(), "ckpt.pth", "nnUNetTrainerTeViA", "Dataset001_X")


def test_other_design_is_refused_naming_the_trainer_that_wrote_it():
    old = {k: v for k, v in _plans(design="reference").items() if k != "design"}  # written before the redesign
    with pytest.raises(TrainingSetupError, match=r"ckpt\.pth holds a 'reference' TeViA network.*"
                                                 r"-tr nnUNetTrainerTeViA_reference") as e:
        check_checkpoint_text(old, _plans(), "ckpt.pth", "nnUNetTrainerTeViA", "Dataset001_X")
    assert isinstance(e.value, TeViAError) and e.value.code.startswith("error: ")  # one line from nnUNetv2_train


def test_other_encoder_is_refused_with_the_command_that_fixes_it():
    theirs = _plans()
    theirs["encoder"] = dict(ENCODER, encoder_id="hf:bert", encoder_spec="hf:/models/bert", revision="sha256:def")
    with pytest.raises(TrainingSetupError, match=r"differs in encoder_id, revision.*embed -d Dataset001_X "
                                                 r"-e hf:/models/bert --max-tokens 24"):
        check_checkpoint_text(theirs, _plans(), "ckpt.pth", "nnUNetTrainerTeViA", "Dataset001_X")
