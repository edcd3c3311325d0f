"""Request bodies, validated by pydantic: unknown fields, bad names and bad prefixes are 422s.

Strict types: JSON `"yes"` or `1` is not a boolean and `5` is not a name (pydantic's lax mode would take
them). Names and prefixes go through the same checks as every other input (appliance.names,
model.canonical_prefix), so the API accepts exactly what the reports file and `savd report` accept.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from appliance.model import PrefixFlags, PrefixReport, canonical_prefix
from appliance.names import check_interface_name, check_router_name, subnet_id_problem


class ReportIn(BaseModel):
    """A source prefix served by `router` on `interface` (seeds/003 section 5)."""

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
