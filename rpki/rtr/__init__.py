"""RTR protocol client (RFC 6810, RFC 8210, draft-ietf-sidrops-8210bis)."""
