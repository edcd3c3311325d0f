"""Every input savd acts on, one package per source, each writing the same state store.

- bgpls/   the IGP topology and route-tag reports, from BGP-LS (decoder, graph, daemon component, CLI)
- reports/ source-prefix reports and router roles from operators and IPAM (YAML file, `savd report`, API)
- rpki/    VRPs and ASPAs from RTR caches and files (the protocol code is the top-level `rpki` package)
- paths/   routers' BGP paths over BMP (RFC 7854 / 9069): what the inter-domain algorithms run on

Each source owns its decoder, its daemon component and its CLI, so `savd run`, `savd topology show` and
`savd report ...` see the same facts through the same code. `assemble.py` completes a store snapshot
with the configuration (roles, neighbours, policy) into the engine's input: one function for the daemon,
the CLIs and the tests.
"""
