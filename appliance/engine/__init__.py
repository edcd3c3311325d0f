"""savd engine."""
