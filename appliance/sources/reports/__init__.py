"""Source-prefix reports: which subnet prefixes each router and interface serves, and router roles.

Three sources, merged by `merge.resolve` with precedence api > file > bgp-ls (see merge.py):
BGP-LS prefix NLRI route tags (tags.py), a declarative YAML file (yamlfile.py), and `savd report`
commands persisted in the data directory (store.py, cli.py).
"""
