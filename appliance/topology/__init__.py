"""savd topology."""
