"""Collaboration between the savd instances of two ASes (draft-mglt-i2nsf-ssf-collaboration, used for
Scenario 2 of draft-tong-savnet-sav-enhanced-by-controller: controllers of neighbouring ASes exchanging
SAV-specific information).

- model.py      the values, the error codes and their strict JSON form
- agreement.py  proposals, the provider's choice, renewal, END_AGREEMENT, expiry (pure)
- replay.py     which SavInfo messages are accepted (pure)
- transport.py  HTTPS with mutual TLS: server, client, the peer's identity from its certificate
- config.py     [collaboration] and [[collaboration.peer]]
- service.py    the running service: state on disk, server, the initiator's tasks, the callbacks
"""
