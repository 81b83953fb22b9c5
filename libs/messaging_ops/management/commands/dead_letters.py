from typing import Any

from django.core.management.base import BaseCommand, CommandError

from messaging.config import get_config
from messaging_ops import dead_letters


class Command(BaseCommand):
    help = "List, inspect, replay or purge this service's dead-letter queue."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("action", choices=["count", "list", "inspect", "replay", "purge"])
        parser.add_argument("message_ids", nargs="*", help="message ids (inspect/replay/purge)")
        parser.add_argument("--all", action="store_true", help="replay or purge every message")
        parser.add_argument("--limit", type=int, default=100)

    def handle(self, *args: Any, **options: Any) -> None:
        config = get_config()
        action = options["action"]
        ids = set(options["message_ids"])
        if action == "count":
            self.stdout.write(str(dead_letters.queue_depth(config)))
            return
        if action == "list":
            letters = dead_letters.list_dead_letters(config, options["limit"])
            for letter in letters:
                self.stdout.write(letter.summary())
            self.stdout.write(f"{len(letters)} shown of {dead_letters.queue_depth(config)}")
            return
        if action == "inspect":
            if not ids:
                raise CommandError("inspect needs at least one message id")
            found = [
                letter
                for letter in dead_letters.list_dead_letters(config, limit=100_000)
                if letter.message_id in ids
            ]
            for letter in found:
                self.stdout.write(f"message {letter.message_id} ({letter.routing_key})")
                for key, value in sorted(letter.headers.items()):
                    self.stdout.write(f"  {key}: {value}")
                self.stdout.write(letter.body[:10_000].decode(errors="replace"))
            if not found:
                raise CommandError(f"no dead letter with id {', '.join(sorted(ids))}")
            return
        if not ids and not options["all"]:
            raise CommandError(f"{action} needs message ids or --all")

        def selected(letter: dead_letters.DeadLetter) -> bool:
            return options["all"] or letter.message_id in ids

        operation = dead_letters.replay if action == "replay" else dead_letters.purge
        try:
            count = operation(config, selected)
        except dead_letters.TooOldToReplay as exc:
            raise CommandError(str(exc)) from exc
        past = {"replay": "replayed", "purge": "purged"}[action]
        self.stdout.write(f"{past} {count} message(s)")
