"""savd speakers."""
