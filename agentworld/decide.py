"""Applying one queued action: its submitter checked, decided against the state, recorded.

A decision reads the state, the clock and the world services (never the world), and returns
the events the action produces or why it is refused; the ledger appends either.
"""

from __future__ import annotations

from typing import Any

from agentworld.authority import cause_of, submitter_refusal
from agentworld.domain import DOMAIN_DECIDERS, DecisionContext, Rejected
from agentworld.ledger import Ledger
from agentworld.model import Event
from agentworld.services import WorldServices


class Decider:
    """Decides actions for one world and appends their events or refusals to its ledger."""

    def __init__(self, ledger: Ledger, services: WorldServices) -> None:
        self._ledger = ledger
        self._services = services

    def apply(self, action_id: int, action: Any, submitter: str | None) -> None:
        """Record a queued action: its refusal as queued, or its decision."""
        if isinstance(action, Rejected):
            self.reject(action_id, action, submitter)
        else:
            self.decide(action_id, action, submitter)

    def decide(self, action_id: int, action: Any, submitter: str | None) -> None:
        """Decide `action` against the current state and append its events (or its refusal).

        The submitter checks run here too, so an action a rule rewrote passes them again.
        """
        ledger = self._ledger
        decide = DOMAIN_DECIDERS[type(action)]
        decision = submitter_refusal(action, submitter) or decide(
            ledger.state, action,
            DecisionContext(ledger.time, action_id, self._services, submitter))
        if isinstance(decision, Rejected):
            self.reject(action_id, decision, submitter)
            return
        cause = cause_of(action_id, submitter)
        for draft in decision:
            ledger.append(draft.kind, draft.data, cause)

    def reject(self, action_id: int, rejection: Rejected, submitter: str | None) -> Event:
        """Append `domain.action_rejected` for `action_id`."""
        data = {"action_id": action_id, "code": rejection.code, "notes": list(rejection.notes),
                **(rejection.details or {})}
        return self._ledger.append("domain.action_rejected", data, cause_of(action_id, submitter))
