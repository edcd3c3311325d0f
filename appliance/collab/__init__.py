"""Collaboration between two savd instances (issue 16): placeholder, replaced by the protocol branch."""
