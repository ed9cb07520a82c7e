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
