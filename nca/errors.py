"""The one exception type users see: a clear message, no traceback."""


class NCAError(Exception):
    """A problem with the user's input (file, name, shape, config) or a failed run.

    Command-line scripts catch it and print ``error: <message>`` with exit code 2;
    the message says what is wrong and what to do.
    """
