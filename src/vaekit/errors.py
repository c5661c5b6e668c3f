"""The one exception type a user can cause. The CLI turns it into a message and exit code 2."""


class VaekitError(Exception):
    """An error caused by the user's input (path, file, shape, flag): shown as one clear line."""
