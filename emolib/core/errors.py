"""The one base of every failure a user can meet and fix: missing or bad data, a bad profile or option, an
unreadable checkpoint or image, weights not downloadable offline, a camera that will not open.

Its message is meant for the user: it names what failed and where, and the fix when there is one. Commands
print it as one line, without a traceback (`emolib ... --debug` shows it); any other exception is a bug and keeps
its traceback. Each subclass also derives from the built-in its callers already catch (ValueError, RuntimeError).
"""
from __future__ import annotations


class EmolibError(Exception):
    """An expected failure whose message tells the user what failed, where, and what to do."""
