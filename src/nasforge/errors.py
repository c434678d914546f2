"""Errors a user can act on. Everything the CLI reports without a traceback derives from NasforgeError."""

from __future__ import annotations


class NasforgeError(Exception):
    """Base class for errors caused by the user's input or environment, not by a bug."""


class ConfigError(NasforgeError):
    """A configuration field is unknown, missing or ill-typed; the message names the field."""


class DataError(NasforgeError):
    """A dataset is missing, malformed or unusable for classification."""


class InvalidGenome(NasforgeError):
    """A genome cannot be built for the task, even after repair; the message names the reason."""


class StoreError(NasforgeError):
    """The study store is missing, from another study, or unreadable."""


class TrialFailure(Exception):
    """A candidate failed while being evaluated (NaN loss, timeout, ...). Recorded, never fatal."""


class TrialPruned(TrialFailure):
    """A candidate stopped early on purpose: a hopeless learning curve, or a diverging loss."""

    def __init__(self, message: str, diverged: bool = False):
        super().__init__(message)
        self.diverged = diverged
        self.curve: list[dict[str, float]] = []


class RunDirError(NasforgeError):
    """A run directory or output folder cannot be used: it names a file, lies under one, cannot be
    written (permissions, a read-only or full disk), or another process is writing it."""


class RunLocked(RunDirError):
    """Another process is writing this run (it holds the run's lock); the message names it."""


class WriteFailed(RunDirError):
    """A write into the run directory failed part-way (a full disk, a file-size limit, a read-only
    file system). What was being written is left as it was before; what was written earlier stands."""


class StoreDamaged(StoreError):
    """The study store exists but cannot be trusted: empty, incomplete, or failing SQLite's check.
    The message says what is wrong, what is still readable and how to recover."""


class NasforgeWarning(UserWarning):
    """Something the user should know that does not stop the work (the CLI prints it as one line)."""
