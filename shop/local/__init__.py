"""The local runtime that makes a fresh checkout run with nothing installed: the embedded
PostgreSQL, the atomic filesystem broker, the bootstrap that picks them, and the process list
``manage.py demo`` starts. It never imports the storefront."""
