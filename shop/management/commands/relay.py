import signal
import threading

from django.core.management.base import BaseCommand

from shop.pipeline import relay


class Command(BaseCommand):
    help = "Publish outbox events to the broker (run one or more, as their own processes)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--batch", type=int, default=100)

    def handle(self, *args, batch: int, **options) -> None:
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        relay.run(stop, batch=batch)
