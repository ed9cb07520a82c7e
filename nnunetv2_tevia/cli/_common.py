"""Shared helpers for the command-line entry points."""
import functools
import sys

from nnunetv2_tevia.errors import TeViAError


def exit_on_user_error(entry):
    """Turn a TeViAError into one clear line on stderr and exit status 2, never a traceback."""

    @functools.wraps(entry)
    def wrapper(*args, **kwargs):
        try:
            return entry(*args, **kwargs)
        except TeViAError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)

    return wrapper
