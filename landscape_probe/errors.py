"""The one exception type for mistakes a user can make."""


class ProbeError(Exception):
    """A problem the user caused and can fix: bad input, a missing file, a wrong flag.

    The message is one sentence that says what is wrong and, where it helps,
    which flag or file fixes it. The CLI prints it and exits with code 2; it
    shows the traceback only with ``--debug``.
    """
