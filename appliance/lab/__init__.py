"""savd lab."""
