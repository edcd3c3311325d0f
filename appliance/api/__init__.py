"""savd HTTP API (FastAPI): topology, reports, rules with explain, RPKI, FlowSpec per peer, counters,
events, alarms and Prometheus metrics, built over the ports in ports.py so each part plugs in."""

from appliance.api.app import create_app
from appliance.api.ports import ApiPorts

__all__ = ["ApiPorts", "create_app"]
