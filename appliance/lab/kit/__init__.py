"""The lab kit: from a containerlab topology with a few `savd.*` labels to a lab savd runs on.

- `labels`: the label set, read into a frozen `KitPlan` (refusals name node and label);
- `frrconf`: what the kit reads from a router's own frr.conf (interfaces, loopback, IGP, BGP);
- `render`: the files `savd lab init` writes (FRR stanzas, topology, savd.toml, reports, converged.json);
- `enforcers`: one savd-enforcer per router in its namespace (`savd lab enforcers up|down`, the demo);
- `flows`: traffic classes sent and counted at the receivers, with a verdict table (`savd lab traffic`);
- `cli`: the `savd lab init|enforcers|traffic` subcommands.

Guide: docs/lab-kit.md.
"""
