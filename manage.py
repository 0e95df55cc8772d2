#!/usr/bin/env python
"""Django's command-line utility for the order pipeline."""

import os
import sys

# Commands that inject faults on purpose: the only ones where shop/pipeline/faults.py switches act.
FAULT_COMMANDS = ("demo", "chaos")


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    if "SECRET_KEY" not in os.environ:
        from shop.local.bootstrap import local_secret_key

        os.environ["SECRET_KEY"] = local_secret_key()  # inherited by every process the demo starts
    if sys.argv[1:2] and sys.argv[1] in FAULT_COMMANDS:
        os.environ.setdefault("FAULTS_ENABLED", "1")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
