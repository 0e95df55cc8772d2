"""The pipeline machinery every stage builds on: the pipeline map, the outbox and its relay,
the idempotent consumer, the task base class, dead letters, queue declarations, request ids,
error classes and the fault switches of the simulated outside world.

It imports nothing of the storefront, the stages or the proofs: they all import it."""
