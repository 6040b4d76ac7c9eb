"""Library chatter kept off the user's terminal, at the call sites that cause it (never globally).

Pillow warns (``UserWarning: Truncated File Read``, ``Corrupt EXIF data``) and FFmpeg prints
(``moov atom not found``) next to emolib's own one-line error about the same file. Both context
managers here *collect* that text instead of letting it through, so the caller decides: fold it
into its own error when the call failed (it often says what is wrong), drop it when the call worked.
"""
from __future__ import annotations

import os
import sys
import tempfile
import threading
import warnings
from contextlib import contextmanager


class Collected:
    """The messages of the warnings collected so far (`collected_warnings` fills it as they come)."""

    def __init__(self, records: list, keep: tuple[type[Warning], ...]):
        self._records, self._keep = records, keep

    @property
    def messages(self) -> list[str]:
        return [str(w.message).strip() for w in self._records if issubclass(w.category, self._keep)]

    def mention(self, *words: str) -> bool:
        return any(word in m.lower() for m in self.messages for word in words)


@contextmanager
def collected_warnings(*categories: type[Warning]):
    """Collect the Python warnings of `categories` (default: UserWarning, what Pillow and most
    libraries use for "something odd in the data") raised inside the block; yields a `Collected`.

    Other warnings are re-issued after the block, so the user's warning filters still decide about
    them; a filter set inside the block (e.g. "error" for one category) still applies.
    """
    keep = tuple(categories or (UserWarning,))
    records: list = []
    try:
        with warnings.catch_warnings(record=True) as records:
            warnings.simplefilter("always")
            yield Collected(records, keep)
    finally:
        for w in records:                                # not ours to silence: the outer filters decide
            if not issubclass(w.category, keep):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


# File descriptor 2 is one per process: two threads that swapped it at once (emolib predict's workers decode files
# side by side) could restore each other's sink and lose stderr for good, and a line written meanwhile would land
# in a sink. The swap happens under this lock, and `print_stderr` takes it too.
STDERR_LOCK = threading.RLock()


def print_stderr(text: str) -> None:
    """Print a line on stderr, never into another thread's capture (`captured_native_stderr`)."""
    with STDERR_LOCK:
        print(text, file=sys.stderr, flush=True)


@contextmanager
def captured_native_stderr():
    """Capture what C libraries (FFmpeg inside OpenCV, ...) write to file descriptor 2 in the block.

    Yields a list that holds the captured lines when the block ends. Python's own ``sys.stderr``
    is flushed first so nothing of ours is swallowed.
    """
    with STDERR_LOCK:
        with _captured_fd2() as lines:
            yield lines


@contextmanager
def _captured_fd2():
    lines: list[str] = []
    fd = 2      # where C libraries write, whatever sys.stderr is (a notebook kernel forwards fd 2 through a pipe)
    try:
        saved = os.dup(fd)
    except OSError:                                      # no descriptor 2 at all
        yield lines
        return
    try:
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):
        pass
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), fd)
        try:
            yield lines
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            sink.seek(0)
            lines.extend(line.strip() for line in sink.read().decode(errors="replace").splitlines() if line.strip())


def summary(messages: list[str], limit: int = 120) -> str:
    """The distinct messages joined on one line ("" when none), cut to `limit` characters."""
    text = "; ".join(dict.fromkeys(" ".join(m.split()) for m in messages if m.strip()))
    return text if len(text) <= limit else text[: limit - 1] + "…"
