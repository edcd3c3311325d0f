"""savd-enforcer: the FRR node's companion that enforces accepted FlowSpec in nftables.

route.py (ExaBGP JSON -> typed routes, RFC 8955 order) -> table.py (routes per peer) -> nftplan.py
(pure: routes -> one nft table, counters attribution) -> nft.py (apply, read back) -> service.py (asyncio
loop around appliance.speakers.exabgp) -> main.py (`savd-enforcer` CLI, HTTP via httpd.py). node.py builds
the receiver's sidecar namespace and FRR's neighbour lines; poller.py is the appliance side. The small
namespace topology for tests and benches is tests/support/testbed.py. README "Enforcer" has the details.
"""
