"""Request bodies, validated by pydantic: unknown fields, bad names and bad prefixes are 422s."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from appliance.model import PrefixFlags, PrefixReport, canonical_prefix

NAME = r"^[A-Za-z0-9_.:/-]+$"


class ReportIn(BaseModel):
    """A source prefix served by `router` on `interface` (seeds/003 section 5)."""

    model_config = ConfigDict(extra="forbid")

    router: str = Field(min_length=1, max_length=64, pattern=NAME, examples=["r1"])
    interface: str = Field(min_length=1, max_length=64, pattern=NAME, examples=["eth1"])
    prefix: str = Field(min_length=1, max_length=64, examples=["198.18.1.0/24"])
    subnet: str = Field(default="", max_length=128)
    anycast: bool = False
    special: bool = False
    multihomed: bool = False

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
