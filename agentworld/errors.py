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
