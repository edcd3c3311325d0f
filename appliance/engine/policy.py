"""Operator policy for the engine: which SAV algorithm runs where, and what a failing packet gets.

Defaults live here and nowhere else. The default algorithm, `auto`, narrows a list only where the inputs
prove it (inter.RouterRun.auto): with no RPKI data every interface is on loose uRPF (RFC 8704's EFP-uRPF B
improperly blocks prefixes hidden by NO_EXPORT or limited propagation, and DSR sources); with RPKI data a
customer interface allows BAR-SAV's list plus every prefix whose origin ASPA does not place outside the cone
(an origin whose providers are not all attested), lateral peers and route servers stay loose, and provider
interfaces get BAR-SAV-PI. The README section "Rules and scenarios" gives what each choice costs in improper
permit on the scenario suite.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from appliance.model import Action, Relationship

__all__ = ["Algorithm", "Policy"]


class Algorithm(enum.StrEnum):
    """SAV algorithms the engine knows (RFC 3704, RFC 8704, draft-ietf-sidrops-bar-sav, draft-tong-savnet)."""

    AUTO = "auto"
    STRICT = "strict"
    LOOSE = "loose"
    FEASIBLE = "feasible"
    EFP_A = "efp-a"
    EFP_B = "efp-b"
    BAR_SAV = "bar-sav"
    BAR_SAV_PI = "bar-sav-pi"


IfaceKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Policy:
    """Per-router and per-interface choices; interface settings win over router settings over defaults.

    `prefix_acl` and `asn_acl` are BAR-SAV's per-interface ACLs (v09 section 4, steps 3 and 13).
    """

    default_algorithm: Algorithm = Algorithm.AUTO
    default_action: Action = field(default_factory=Action)
    router_actions: Mapping[str, Action] = field(default_factory=dict)
    interface_actions: Mapping[IfaceKey, Action] = field(default_factory=dict)
    interface_algorithms: Mapping[IfaceKey, Algorithm] = field(default_factory=dict)
    prefix_acl: Mapping[IfaceKey, tuple[str, ...]] = field(default_factory=dict)
    asn_acl: Mapping[IfaceKey, tuple[int, ...]] = field(default_factory=dict)

    def action_for(self, router: str, interface: str) -> Action:
        key = (router, interface)
        if key in self.interface_actions:
            return self.interface_actions[key]
        return self.router_actions.get(router, self.default_action)

    def algorithm_for(self, router: str, interface: str) -> Algorithm:
        return self.interface_algorithms.get((router, interface), self.default_algorithm)


def uses_customer_list(relationship: Relationship) -> bool:
    """Customer-interface algorithms (EFP-uRPF, BAR-SAV) apply to customers; elsewhere they mean loose."""
    return relationship is Relationship.CUSTOMER
