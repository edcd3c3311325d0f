"""savd: a BGP-speaking Source Address Validation route-server appliance."""

__version__ = "0.1.0"
