"""The ``arena`` command line: one sub-command group per area, each in its own module."""
