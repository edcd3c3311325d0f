"""RPKI ingest: RTR v0/v1/v2 (with ASPA), rtrlib binding, relying-party JSON files, VRP/ASPA tables."""
