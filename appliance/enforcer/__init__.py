"""savd enforcer."""
