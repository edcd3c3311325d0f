"""BGP-LS (RFC 9552): the IGP topology and route-tag reports.

decode.py turns ExaBGP's JSON UPDATEs into link-state records, graph.py keeps them per peer as a
`Topology`, ingest.py follows sessions (a peer down marks its facts stale), component.py publishes the
graph into the store in `savd run`, cli.py is `savd topology show`; frr_ls.py reads FRR's own table.
"""
