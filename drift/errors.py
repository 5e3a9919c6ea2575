"""The one exception type for user errors."""

from __future__ import annotations


class DriftError(Exception):
    """A user error: bad input, a missing file, an unsupported model.

    The message names the input and the fix; the CLI prints it on one line and exits with code 2.
    """
