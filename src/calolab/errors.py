"""The one exception type for user errors: the CLI prints its message on one line."""


class CalolabError(Exception):
    """A user error (bad input, missing file, wrong shape): reported without a traceback."""
