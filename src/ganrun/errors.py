"""The one exception type the CLI turns into a clean message instead of a traceback."""


class GanrunError(Exception):
    """A problem the user can fix: the message names the key, the value and the fix."""


def first_line(err: BaseException, limit: int | None = None) -> str:
    """The error in one line (cut to `limit` characters): a GanrunError's own message, others
    prefixed with their type, for messages that wrap a library's failure."""
    lines = str(err).strip().splitlines()
    text = (lines[0] if lines else "")[:limit]
    if isinstance(err, GanrunError):
        return text or type(err).__name__
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


class RunInterrupted(Exception):
    """A run stopped by a signal (SIGTERM, SIGINT, SIGUSR1) after saving last.pt; the CLI
    exits with `exit_code` (143, or 130 for SIGINT) and job.json says `interrupted`."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
