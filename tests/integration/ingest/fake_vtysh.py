"""Stand-in for `vtysh -c CMD` in the exporter's mock test: prints the JSON recorded for CMD.

Usage: fake_vtysh.py FIXTURE.json ROUTER -c CMD. The fixture is re-read on every call, so a test edits
it to simulate an LSDB change. Unknown commands print FRR's error text (not JSON), as vtysh does."""

import json
import sys

fixture, router, _, cmd = sys.argv[1:5]
docs = json.load(open(fixture))[router]
if cmd in docs:
    print(json.dumps(docs[cmd]))
else:
    print("% Unknown command")
