"""savd flowspec."""
