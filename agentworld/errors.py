"""The exception hierarchy: every error agentworld raises derives from `AgentWorldError`.

Refused actions are *not* exceptions: they become `domain.action_rejected` events.
"""

from __future__ import annotations


class AgentWorldError(Exception):
    """Root of every error raised by agentworld."""


class CanonicalEncodingError(AgentWorldError, ValueError):
    """A value cannot be encoded canonically (NaN, Infinity, or an unsupported type)."""


class InvalidInputError(AgentWorldError, ValueError):
    """External input (an action, manifest or config) does not match its schema."""

    def __init__(self, what: str, problems: list[str]) -> None:
        self.what = what
        self.problems = list(problems)
        super().__init__(f"invalid {what}: " + "; ".join(self.problems))


class PluginError(AgentWorldError):
    """A plugin is malformed, conflicts with another, or cannot be found."""


class UnknownEventKindError(AgentWorldError):
    """A journal holds an event kind this version of agentworld cannot apply."""


class MalformedEventError(AgentWorldError):
    """An event's data does not fit its kind or the state it is applied to (a corrupt journal)."""


class ExecutorUnavailableError(AgentWorldError):
    """The requested executor is not registered or cannot run on this machine."""


class StoreError(AgentWorldError):
    """A module store failed, refused a key, or returned bytes that do not match their hash."""


class ExecutorConfigError(AgentWorldError, ValueError):
    """An executor's configuration cannot be used (an unknown option, a cache path that is not a
    directory, an unusable compile-cache key)."""


class StoreUnavailableError(StoreError):
    """A module store could not be reached, or a transfer was cut: an outage, not bad data."""


class LiveError(AgentWorldError):
    """The live driver refused a commit, or cannot use its directory."""


class InvalidCommitError(LiveError, InvalidInputError):
    """A commit does not match the commit format (every problem is listed)."""


class WorldMismatchError(LiveError):
    """A commit names another world than the driver's."""


class ActionRootMismatchError(LiveError):
    """A commit's `action_root` is not the root of its actions."""


class HeightGapError(LiveError):
    """A commit skips heights; `missing` is the first and last height that were skipped."""

    def __init__(self, message: str, missing: tuple[int, int]) -> None:
        self.missing = missing
        super().__init__(message)


class HeightConflictError(LiveError):
    """An applied height is submitted again with a different `action_root`."""


class HeightPrunedError(LiveError):
    """An applied height is submitted again, but its record was pruned, so it cannot be compared."""


class HeightFailedError(LiveError):
    """Executing a height raised (a module halt, a store outage); the height is not applied."""


class LiveDirectoryError(LiveError):
    """A live directory is unusable: not one, locked, or a record or checkpoint damaged (named)."""


class LiveDirectoryLockedError(LiveDirectoryError):
    """Another live driver holds the directory's lock."""


class DivergenceError(LiveError):
    """Re-executing a recorded height gave other hashes than the ones recorded."""
