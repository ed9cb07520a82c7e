"""Error types. Command-line tools print these as one line (no traceback) and exit with status 2.

Every message names the file, the case and the fix, so a user never has to read a traceback.
"""


class TeViAError(Exception):
    """Base class of every error that is the user's input, not a bug."""


class PromptFileError(TeViAError):
    """The prompt JSON, or a table imported into it, is malformed or inconsistent."""


class TextCacheError(TeViAError):
    """The text-embedding cache is missing, stale, corrupt or made by another encoder."""


class EncoderError(TeViAError):
    """A text encoder cannot be found or loaded."""


class MissingTextError(TeViAError):
    """A case has no report text and no no-report text applies."""


class ConversionError(TeViAError):
    """The source folder cannot be turned into an nnU-Net raw dataset as it stands."""


class AttentionStageError(TeViAError, ValueError):
    """--attention-stage names a guided stage the model does not have."""


class StepFailedError(TeViAError):
    """A command that the demo or the benchmark runs (training, prediction) failed; the message names its log."""


class StaleResultError(TeViAError):
    """A work folder holds a result made with other arguments than the ones given now."""


class MissingPredictionError(TeViAError, FileNotFoundError):
    """A case to score has no prediction file (it is never left out of a mean)."""


class TrainingSetupError(TeViAError, SystemExit):
    """A TeViA trainer cannot start: no or a stale text cache, a checkpoint of another encoder or design.

    Also a SystemExit, on purpose: ``nnUNetv2_train`` is nnU-Net's entry point, which this package cannot wrap, and
    SystemExit is the one exception Python reports as its message alone, without a traceback (exit status 1).
    Python callers catch it as a TeViAError like every other input error.
    """

    def __init__(self, message: str):
        super().__init__(message)
        self.code = f"error: {message}"
