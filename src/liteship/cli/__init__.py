"""The ``liteship`` command line: one module per command group, loaded lazily by ``main``."""
