"""savd engine: a pure function from a snapshot of inputs to per-interface SAV allow/block lists.

Map (data flows down):
    prefixset.py   prefix sets on py-radix (v4 + v6 in one tree), CIDR arithmetic via netaddr
    aspa.py        ASPA AS_PATH verification, draft-ietf-sidrops-aspa-verification-28 section 5
    relationships  CAIDA as-rel parsing (neighbour classification, ASPAs for benchmarks)
    policy.py      per-interface algorithm and mode; the defaults
    rib.py         one router's Adj-RIBs-In and the RPKI (VRP/ASPA) indexes
    intra.py       rules of draft-tong-savnet (controller): border blocklists, multi-homed access allowlists
    inter.py       strict/feasible/loose uRPF, EFP-uRPF A/B, BAR-SAV, BAR-SAV-PI (RouterRun decides)
    snapshot.py    Snapshot + decide/materialize/compute -> model.SavRuleSet (the facade)
    live.py        one router's inter-domain state kept current path by path
    incremental.py Engine: typed events in, changed keys out, ruleset() equal to a full compute
    scenarios.py   reference scenarios as data, scored for improper block / permit
    explain.py     what a rule set does to one source, and why
    loader.py, cli.py   the edge: files in, `savd scenarios|rules` out (the only modules doing I/O)
"""
