"""Error classes shared by the pipeline steps."""


class TransientError(Exception):
    """Worth retrying: the same call may succeed later (timeouts, outages)."""


class PermanentError(Exception):
    """Retrying cannot help: the input itself is wrong."""
