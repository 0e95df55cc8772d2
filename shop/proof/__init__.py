"""The proofs that the guarantees hold: the checker (``audit``, every invariant over the
database) and the chaos runner (``chaos``, load under injected outages). Nothing imports them
except their management commands and the tests."""
