"""Request bodies, validated by pydantic: unknown fields, bad names and bad prefixes are 422s.

Strict types: JSON `"yes"` or `1` is not a boolean and `5` is not a name (pydantic's lax mode would take
them). Names and prefixes go through the same checks as every other input (appliance.names,
model.canonical_prefix), so the API accepts exactly what the reports file and `savd report` accept.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from appliance.model import PrefixFlags, PrefixReport, canonical_prefix
from appliance.names import check_interface_name, check_router_name, subnet_id_problem


class ReportIn(BaseModel):
    """A source prefix served by `router` on `interface` (the controller draft section 5)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    router: str = Field(min_length=1, max_length=64, examples=["r1"])
    interface: str = Field(min_length=1, max_length=15, examples=["eth1"])
    prefix: str = Field(min_length=1, max_length=64, examples=["198.18.1.0/24"])
    subnet: str = Field(default="", max_length=128)
    anycast: StrictBool = False
    special: StrictBool = False
    multihomed: StrictBool = False

    @field_validator("router")
    @classmethod
    def _router(cls, value: str) -> str:
        return check_router_name(value)

    @field_validator("interface")
    @classmethod
    def _interface(cls, value: str) -> str:
        return check_interface_name(value)

    @field_validator("subnet")
    @classmethod
    def _subnet(cls, value: str) -> str:
        problem = subnet_id_problem(value) if value else None
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("prefix")
    @classmethod
    def _canonical(cls, value: str) -> str:
        try:
            return canonical_prefix(value)
        except ValueError as exc:
            raise ValueError(f"not a CIDR prefix with zero host bits: {exc}") from None

    def to_report(self) -> PrefixReport:
        flags = PrefixFlags(self.anycast, self.special, self.multihomed)
        return PrefixReport(self.router, self.interface, self.prefix, self.subnet, flags, source="api")


# --- responses --------------------------------------------------------------------------------------
# Typed bodies for the OpenAPI document and /docs. `extra="allow"` where the body carries the engine's or
# the state's own JSON (rules, facts), so a field added there is served, not silently dropped.


class ErrorBody(BaseModel):
    """Every error, any status (appliance/api/errors.py): `message` for an operator, plus optional fields
    (`detail` for a 422, `error` and `kind` for a journal failure, `limit_bytes` for a 413)."""

    model_config = ConfigDict(extra="allow")

    message: str = Field(examples=["missing or wrong bearer token (Authorization: Bearer <token>)"])


class Health(BaseModel):
    status: str = Field(examples=["ok", "degraded"])
    state_version: int
    rules_version: int | None
    alarms: int = Field(description="active alarms")
    degraded: list[str] | None = Field(default=None, description="why, while status is degraded")


class Flags(BaseModel):
    anycast: bool
    special: bool
    multihomed: bool


class ReportOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    router: str
    interface: str
    prefix: str
    subnet: str
    flags: Flags
    source: str = ""


class ListedReport(ReportOut):
    sources: list[str] = Field(description="the sources holding this report (api, file:..., store)")


class ReportList(BaseModel):
    version: int
    reports: list[ListedReport]


class ReportWritten(BaseModel):
    report: ReportOut
    created: bool = Field(description="false when the API held a report for this key already")
    replaced: list[ReportOut]
    version: int


class ReportsDeleted(BaseModel):
    deleted: list[ReportOut]
    version: int


class RuleOut(BaseModel):
    """One interface's SAV rule (model.SavRuleSet.to_dict), with provenance per prefix."""

    model_config = ConfigDict(extra="allow")

    router: str
    interface: str
    kind: str = Field(examples=["allow", "block"])
    prefixes: list[str]


class RuleList(BaseModel):
    version: int | None
    rules: list[RuleOut]


class InterfaceRule(BaseModel):
    version: int | None
    rule: RuleOut


class FlowSpecPeers(BaseModel):
    peers: dict[str, int] = Field(description="peer -> FlowSpec rules held for it")


class Alarms(BaseModel):
    alarms: list[dict[str, Any]]
