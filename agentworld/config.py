"""The world's configuration: the settings that shape results, checked when made."""

from __future__ import annotations

from typing import Any

import attrs
from attrs import Factory, field, frozen

from agentworld.canonical import canonical_hash
from agentworld.convert import unstructure
from agentworld.errors import InvalidInputError
from agentworld.executor import CallLimits
from agentworld.metering import CURRENT_GAS_SCHEDULE, GAS_SCHEDULES

# The largest limits a manifest may ask for unless the world says otherwise.
MAX_LIMITS = CallLimits(
    max_mem_bytes=256 * 1024 * 1024,
    max_gas=1_000_000_000,
    max_output_bytes=4 * 1024 * 1024,
    max_effects=256,
    max_emits=1024,
    max_call_ms=10_000,
)


@frozen(kw_only=True)
class WorldConfig:
    """World-wide settings that shape results; their hash is in every module call's context.

    Engine and store choices are deliberately not here: a store never changes a result, and
    engines must not either. Executor options that bound resources (wasmtime's native stack
    size, its memory ceiling) decide which calls fail, so machines that must agree run the
    same engine version with the same options.
    """

    world_id: str = "world"
    default_limits: CallLimits = Factory(CallLimits)
    max_limits: CallLimits = Factory(lambda: MAX_LIMITS)
    halt_on_module_failure: bool = False
    gas_schedule: int = field(default=CURRENT_GAS_SCHEDULE)
    """The version of the gas cost schedule every module call of this world is metered with."""
    max_artifact_bytes: int = 2 * 1024 * 1024
    """The largest artifact a deploy accepts (bounds deploy-time instrumentation and compiling)."""

    @gas_schedule.validator
    def _known_schedule(self, _attribute: Any, value: int) -> None:
        if value not in GAS_SCHEDULES:
            raise ValueError(f"gas_schedule {value!r} is unknown to this version of agentworld "
                             f"(known: {', '.join(map(str, GAS_SCHEDULES))})")

    def __attrs_post_init__(self) -> None:
        problems = _config_problems(self)
        if problems:
            raise InvalidInputError("world config", problems)


def _config_problems(config: WorldConfig) -> list[str]:
    """Why `config` cannot run a world: every limit a positive 64-bit integer, no default above
    its maximum (a negative gas limit would mean none, an oversized default stalls a step)."""
    problems = []
    if not isinstance(config.world_id, str) or not config.world_id:
        problems.append("world_id must be a non-empty string")
    if not isinstance(config.halt_on_module_failure, bool):
        problems.append("halt_on_module_failure must be true or false")
    if type(config.max_artifact_bytes) is not int or not 1 <= config.max_artifact_bytes < 2**63:
        problems.append(f"max_artifact_bytes must be a positive integer below 2**63, "
                        f"got {config.max_artifact_bytes!r}")
    limits = {"default_limits": config.default_limits, "max_limits": config.max_limits}
    for name, value in limits.items():
        if not isinstance(value, CallLimits):
            problems.append(f"{name} must be call limits, got {type(value).__name__}")
    if problems:
        return problems
    for limit in attrs.fields(CallLimits):
        default = getattr(config.default_limits, limit.name)
        maximum = getattr(config.max_limits, limit.name)
        for name, value in (("default_limits", default), ("max_limits", maximum)):
            if type(value) is not int or not 1 <= value < 2**63:
                problems.append(f"{name}.{limit.name} must be a positive integer below 2**63, "
                                f"got {value!r}")
        if type(default) is int and type(maximum) is int and default > maximum:
            problems.append(f"default_limits.{limit.name} ({default}) is above "
                            f"max_limits.{limit.name} ({maximum})")
    return problems


def config_hash(config: WorldConfig) -> str:
    """SHA-256 of the canonical config: what module calls get as `world_config_hash`."""
    return canonical_hash(unstructure(config))
