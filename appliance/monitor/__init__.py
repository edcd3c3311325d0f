"""savd monitor."""
