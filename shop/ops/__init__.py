"""The operations page for staff (``/ops/``), its live stream, and ``/metrics``: the pipeline's
backlog made visible, every figure from one snapshot function (``snapshot.py``)."""
