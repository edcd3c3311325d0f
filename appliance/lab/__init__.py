"""Network-namespace lab runner for containerlab topologies with real FRR (see runner.py for the API)."""

from appliance.lab.errors import LabError, TopologyError
from appliance.lab.runner import Lab
from appliance.lab.topology import Topology, load_topology

__all__ = ["Lab", "LabError", "Topology", "TopologyError", "load_topology"]
