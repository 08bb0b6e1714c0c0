"""``python manage.py default_drill --member ID``: simulate the default of a
member on the books as they are (``market.services.futures.default_drill``)
and print its loss under the stress move and the layer of the default
waterfall that covers each part. Changes nothing."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Organisation
from market.services import futures


class Command(BaseCommand):
    help = "Simulate a member's default and print which layers of the waterfall cover the loss (changes nothing)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--member", required=True, type=int, help="the organisation's id")

    def handle(self, *args: Any, **options: Any) -> None:
        organisation = Organisation.objects.filter(pk=options["member"]).first()
        if organisation is None:
            raise CommandError(f"no organisation with id {options['member']}")
        drill = futures.default_drill(organisation_id=organisation.pk)
        self.stdout.write(f"Default drill for {organisation.legal_name} (#{organisation.pk})")
        self.stdout.write(f"loss under a {futures.core.STRESS_MOVE:.0%} move: {drill.loss} EUR")
        for layer, amount in drill.layers:
            self.stdout.write(f"  {layer.value}: {amount} EUR")
        for member, amount in sorted(drill.others.items()):
            self.stdout.write(f"    from member #{member}: {amount} EUR")
        self.stdout.write("nothing was changed")
