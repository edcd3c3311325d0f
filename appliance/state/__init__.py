"""savd state."""
