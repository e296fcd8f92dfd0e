"""The one exception type the CLI turns into a clean message instead of a traceback."""


class GanrunError(Exception):
    """A problem the user can fix: the message names the key, the value and the fix."""
