"""Module manifests: the model, and validation that lists every problem at once."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from attrs import Factory, frozen

from agentworld.canonical import canonical_hash
from agentworld.convert import structure, structure_collecting, unstructure
from agentworld.errors import InvalidInputError
from agentworld.executor import CallLimits
from agentworld.filters import (
    MAX_RE_RULES,
    Predicate,
    compile_ruleset,
    count_regex_rules,
    kind_pattern_problem,
)

INTERFACE_VERSIONS = ("wasm-1",)
# `abi_contract.abi_version` values this host honours (unset means the host's own).
ABI_VERSIONS = (1,)
ENTRYPOINTS = {"reducer": "reduce", "pure": "call"}
STAGES = ("pre_action", "post_action", "post_event", "tick")
MODULE_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")
VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


@frozen(kw_only=True)
class Subscription:
    """When a module is called: a stage, kind patterns, optional filters, a tick cadence."""

    stage: str
    event_kinds: tuple[str, ...] = ()
    action_kinds: tuple[str, ...] = ()
    filters: dict[str, Any] | None = None
    every_ticks: int | None = None


@frozen(kw_only=True)
class AbiContract:
    """The module's ABI promises: schemas (in pairs), capability slots and policy hooks."""

    abi_version: int | None = None
    input_schema: Any = None
    output_schema: Any = None
    cap_slots: dict[str, str] = Factory(dict)
    policy_hooks: tuple[str, ...] = ()


@frozen(kw_only=True)
class ManifestLimits:
    """Per-call limits the module asks for; unset fields take the world's defaults."""

    max_mem_bytes: int | None = None
    max_gas: int | None = None
    max_output_bytes: int | None = None
    max_effects: int | None = None
    max_emits: int | None = None
    max_call_ms: int | None = None

    def resolve(self, defaults: CallLimits) -> CallLimits:
        """The effective call limits: ours where set, `defaults` elsewhere."""
        values = {k: v for k, v in unstructure(self).items() if v is not None}
        return CallLimits(**{**unstructure(defaults), **values})


@frozen(kw_only=True)
class Manifest:
    """What a module is, what it exports, when it is called and what it may do."""

    module_id: str
    name: str
    version: str
    kind: str
    role: str = "domain"
    wasm_hash: str
    interface_version: str
    exports: tuple[str, ...]
    subscriptions: tuple[Subscription, ...] = ()
    required_caps: tuple[str, ...] = ()
    abi_contract: AbiContract = AbiContract()
    limits: ManifestLimits = ManifestLimits()

    @property
    def key(self) -> str:
        """`module_id@version`."""
        return f"{self.module_id}@{self.version}"

    @property
    def entrypoint(self) -> str:
        """The export called for this module's kind."""
        return ENTRYPOINTS.get(self.kind, "reduce")

    @property
    def has_pre_action(self) -> bool:
        """True when the module is a rule: it may deny or rewrite actions (pre_action)."""
        return any(sub.stage == "pre_action" for sub in self.subscriptions)

    @property
    def tick_every(self) -> int | None:
        """The cadence of the first tick subscription, or None without one."""
        for sub in self.subscriptions:
            if sub.stage == "tick":
                return sub.every_ticks or 1
        return None

    def to_json(self) -> dict[str, Any]:
        """The manifest as plain JSON data."""
        return unstructure(self)  # type: ignore[no-any-return]

    def manifest_hash(self) -> str:
        """SHA-256 of the manifest's canonical JSON."""
        return canonical_hash(self.to_json())


def parse_manifest(value: Any) -> Manifest:
    """Structure a manifest from JSON data (unknown fields are errors)."""
    if isinstance(value, Manifest):
        return value
    return structure(value, Manifest, "manifest")


def read_manifest(value: Any) -> tuple[Manifest | None, list[str]]:
    """A manifest and every problem visible without a world, all at once.

    Unknown fields are reported beside every other problem: the manifest built from the known
    fields is still checked. The manifest is None only when even those cannot be structured.
    """
    if isinstance(value, Manifest):
        return value, intrinsic_problems(value)
    manifest, problems = structure_collecting(value, Manifest, "manifest")
    if manifest is None:
        return None, problems
    return manifest, [*problems, *intrinsic_problems(manifest)]


@frozen
class CompiledSubscription:
    """A subscription with its filters compiled, ready for routing."""

    stage: str
    kinds: tuple[str, ...]
    event_filter: Predicate | None
    action_filter: Predicate | None
    every_ticks: int


def _subscription_problems(index: int, sub: Subscription, problems: list[str]) -> None:
    where = f"subscriptions[{index}]"
    if sub.stage not in STAGES:
        problems.append(f"{where}: stage must be one of {', '.join(STAGES)}, got {sub.stage!r}")
        return
    if sub.stage == "tick":
        if sub.event_kinds or sub.action_kinds or sub.filters:
            problems.append(f"{where}: a tick subscription takes no kinds and no filters")
        if sub.every_ticks is not None and sub.every_ticks < 1:
            problems.append(f"{where}: every_ticks must be at least 1, got {sub.every_ticks}")
        return
    if sub.every_ticks is not None:
        problems.append(f"{where}: every_ticks is only for tick subscriptions")
    if sub.stage == "post_event":
        if not sub.event_kinds or sub.action_kinds:
            problems.append(f"{where}: post_event needs event_kinds and no action_kinds")
    elif not sub.action_kinds or sub.event_kinds:
        problems.append(f"{where}: {sub.stage} needs action_kinds and no event_kinds")
    for pattern in (*sub.event_kinds, *sub.action_kinds):
        problem = kind_pattern_problem(pattern)
        if problem:
            problems.append(f"{where}: {problem}")
    for pattern in sub.action_kinds:
        if pattern != "*" and not pattern.startswith("action."):
            problems.append(f"{where}: action kind {pattern!r} must start with 'action.'")
    allowed_filters = {"pre_action": {"action"}, "post_action": {"action", "event"},
                       "post_event": {"event"}}[sub.stage]
    for key in sorted(set(sub.filters or {}) - allowed_filters):
        problems.append(f"{where}.filters: {key!r} filters do not apply to stage {sub.stage}")


def compile_subscriptions(manifest: Manifest) -> tuple[CompiledSubscription, ...]:
    """Compile a (valid) manifest's subscriptions for routing."""
    problems: list[str] = []
    compiled = []
    for index, sub in enumerate(manifest.subscriptions):
        filters = sub.filters or {}
        where = f"subscriptions[{index}].filters"
        event_filter = (compile_ruleset(filters["event"], f"{where}.event", problems)
                        if "event" in filters else None)
        action_filter = (compile_ruleset(filters["action"], f"{where}.action", problems)
                         if "action" in filters else None)
        compiled.append(CompiledSubscription(
            sub.stage, sub.event_kinds or sub.action_kinds, event_filter, action_filter,
            sub.every_ticks or 1,
        ))
    if problems:
        raise InvalidInputError("manifest filters", problems)
    return tuple(compiled)


@frozen
class ValidationContext:
    """What manifest validation may consult besides the manifest itself."""

    time: int
    max_limits: CallLimits
    grants: dict[str, Any]
    artifact_deployed: Callable[[str], bool]
    artifact_exports: Callable[[str], list[str] | None]
    artifact_present: Callable[[str], bool]
    # The manifest a policy hook naming a module_id would be pinned to now (None: unregistered).
    policy_hook: Callable[[str], Manifest | None]


def intrinsic_problems(manifest: Manifest) -> list[str]:
    """Every problem visible from the manifest alone, without a world."""
    problems: list[str] = []
    if not MODULE_ID.fullmatch(manifest.module_id):
        problems.append(f"module_id {manifest.module_id!r} must match {MODULE_ID.pattern}")
    for field_name in ("name", "version", "role"):
        if not getattr(manifest, field_name).strip():
            problems.append(f"{field_name} must not be blank")
    if manifest.version.strip() and not VERSION.fullmatch(manifest.version):
        problems.append(f"version {manifest.version!r} must match {VERSION.pattern}")
    if manifest.kind not in ENTRYPOINTS:
        problems.append(f"kind must be 'reducer' or 'pure', got {manifest.kind!r}")
    if manifest.interface_version not in INTERFACE_VERSIONS:
        problems.append(f"unsupported interface_version {manifest.interface_version!r} "
                        f"(supported: {', '.join(INTERFACE_VERSIONS)})")
    if manifest.kind in ENTRYPOINTS and manifest.entrypoint not in manifest.exports:
        problems.append(f"exports must include the {manifest.kind} entrypoint "
                        f"{manifest.entrypoint!r}")
    if not re.fullmatch(r"[0-9a-f]{64}", manifest.wasm_hash):
        problems.append(f"wasm_hash {manifest.wasm_hash!r} is not a SHA-256 hex digest")
    regex_rules = sum(count_regex_rules(ruleset) for sub in manifest.subscriptions
                      for ruleset in (sub.filters or {}).values())
    if regex_rules > MAX_RE_RULES:
        problems.append(f"at most {MAX_RE_RULES} 're' filter rules per manifest, got {regex_rules}")
    if sum(sub.stage == "tick" for sub in manifest.subscriptions) > 1:
        problems.append("at most one tick subscription: an instance has one tick schedule")
    for index, sub in enumerate(manifest.subscriptions):
        _subscription_problems(index, sub, problems)
        for key, ruleset in sorted((sub.filters or {}).items()):
            if key in {"event", "action"}:
                compile_ruleset(ruleset, f"subscriptions[{index}].filters.{key}", problems)
    abi = manifest.abi_contract
    if abi.abi_version is not None and abi.abi_version not in ABI_VERSIONS:
        problems.append(f"abi_contract: unsupported abi_version {abi.abi_version} "
                        f"(supported: {', '.join(map(str, ABI_VERSIONS))})")
    if (abi.input_schema is None) != (abi.output_schema is None):
        problems.append("abi_contract: input_schema and output_schema come in pairs")
    for slot, cap_ref in sorted(abi.cap_slots.items()):
        if cap_ref not in manifest.required_caps:
            problems.append(f"abi_contract: cap slot {slot!r} binds {cap_ref!r}, "
                            "which is not in required_caps")
    for hook in abi.policy_hooks:
        if hook == manifest.module_id:
            problems.append(f"abi_contract: policy hook {hook!r} is the module itself")
    for name, value in sorted(unstructure(manifest.limits).items()):
        minimum = 0 if name in {"max_effects", "max_emits"} else 1
        if value is not None and value < minimum:
            problems.append(f"limits.{name} must be at least {minimum}, got {value}")
    return problems


def validate_manifest(manifest: Manifest, ctx: ValidationContext) -> list[str]:
    """Every problem with `manifest` in this world (empty when it may be installed)."""
    return [*intrinsic_problems(manifest), *context_problems(manifest, ctx)]


def context_problems(manifest: Manifest, ctx: ValidationContext) -> list[str]:
    """The problems with `manifest` that only this world shows (grants, artifacts, limits)."""
    problems: list[str] = []
    for hook in manifest.abi_contract.policy_hooks:
        if hook == manifest.module_id:
            continue
        target = ctx.policy_hook(hook)
        if target is None:
            problems.append(f"abi_contract: policy hook {hook!r} is not a registered module")
        elif target.kind != "pure":
            problems.append(f"abi_contract: policy hook {hook!r} ({target.key}) must be a pure "
                            "module")
    _limit_problems(manifest, ctx, problems)
    for cap_ref in manifest.required_caps:
        grant = ctx.grants.get(cap_ref)
        if grant is None:
            problems.append(f"required cap {cap_ref!r} is not granted")
        elif grant.expired(ctx.time):
            problems.append(f"required cap {cap_ref!r} expired at {grant.expires_at}")
    if not ctx.artifact_deployed(manifest.wasm_hash):
        problems.append(f"artifact {manifest.wasm_hash} is not deployed")
        return problems
    real_exports = ctx.artifact_exports(manifest.wasm_hash)
    if real_exports is not None:
        # Exports are promises the compatibility rules rely on: they must be true.
        problems.extend(f"export {name!r} is not exported by artifact {manifest.wasm_hash}"
                        for name in manifest.exports if name not in real_exports)
    if not ctx.artifact_present(manifest.wasm_hash):
        problems.append(f"artifact {manifest.wasm_hash} is deployed but its bytes are missing")
    return problems


def _limit_problems(manifest: Manifest, ctx: ValidationContext, problems: list[str]) -> None:
    maxima = unstructure(ctx.max_limits)
    for name, value in sorted(unstructure(manifest.limits).items()):
        if value is not None and value > maxima[name]:
            problems.append(f"limits.{name} = {value} exceeds the world's maximum {maxima[name]}")
