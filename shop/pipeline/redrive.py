"""Re-driving an order from a chosen stage: "run shipping again", as a staff action.

A stage is a subscription of the pipeline map (``shop/pipeline/events.py``): an input event
and the task that consumes it. A re-drive takes the order's input event for that stage, as the
outbox recorded it (its payload unchanged), and sends it once more to that one task, through
the outbox, under a new message id: the re-drive's own outbox row, which is also the entry on
the order's timeline naming the staff member. A new id means the idempotent consumer's record
(``ProcessedMessage``) does not stop it, on purpose: what stops a repeated effect is the
effect's own key (one payment and its status, one stock hold, one shipment, one fraud check,
one email per kind), which every stage checks before it acts.

Each stage also says, up front, whether it already took effect for the order (an *effect
check*, registered by the stage's app, since the pipeline imports no stage): a re-drive of a
stage that is done emits nothing and says so ("nothing to do: shipment ... already exists"),
unless ``force`` asks for the message anyway, which the stage then settles without a second
effect. Parked dead letters of the same stage and event are closed (``discarded``): the
re-drive takes their place, so they are not replayed as well.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction

from shop.pipeline.backlog import handler_for
from shop.pipeline.events import PIPELINE, Subscription
from shop.pipeline.models import DeadLetter, OutboxEvent, ProcessedMessage
from shop.pipeline.outbox import emit

# (order id, input event kind) -> "" when the stage has not taken effect, else what it did.
EffectCheck = Callable[[str, str], str]
_EFFECTS: dict[str, EffectCheck] = {}
REDRIVEN = "stage.redriven"


class RedriveRefused(ValueError):
    """The re-drive cannot be done as asked (unknown stage, no input event): a form error."""


@dataclass(frozen=True)
class RedriveResult:
    """What a re-drive did: ``emitted`` with ``message_id``, or nothing because ``already_done``."""

    order_id: str
    stage: Subscription
    emitted: bool
    message_id: str
    already_done: str
    superseded: tuple[int, ...]

    @property
    def summary(self) -> str:
        """One sentence for staff, the same as on the order's timeline."""
        label = stage_label(self.stage)
        if not self.emitted:
            return f"{label}: nothing to do: {self.already_done}"
        text = f"{label}: re-emitted {self.stage.event} as message {self.message_id}"
        if self.already_done:
            text += f" (the stage reports it already took effect: {self.already_done})"
        if self.superseded:
            text += f"; closed parked dead letter(s) {', '.join(map(str, self.superseded))}"
        return text


def register_effect_check(task: str, check: EffectCheck) -> None:
    """Called by each stage's app (``ready``): how to tell that its task already took effect."""
    _EFFECTS[task] = check


def stage_label(stage: Subscription) -> str:
    return f"{stage.task.rsplit('.', 1)[-1]} on {stage.event}"


def stage_for(task: str, event: str = "") -> Subscription:
    """The subscription named by a task (and its input event, when the task has several)."""
    matches = [s for s in PIPELINE if s.task == task and (not event or s.event == event)]
    if not matches:
        raise RedriveRefused(f"no stage {task!r}{f' on {event!r}' if event else ''} in the pipeline map")
    if len(matches) > 1:
        events = ", ".join(s.event for s in matches)
        raise RedriveRefused(f"{task} consumes several events ({events}): name the one to re-drive")
    return matches[0]


def stages_for(order_id: str) -> list[Subscription]:
    """The stages of the map whose input event this order has: the ones it can be re-driven from."""
    kinds = set(OutboxEvent.objects.filter(order_id=order_id, target_task="").values_list("kind", flat=True))
    return [s for s in PIPELINE if s.event in kinds]


def effect_already_taken(order_id: str, stage: Subscription) -> str:
    """What the stage already did for the order ("" when nothing, or when the stage cannot tell)."""
    check = _EFFECTS.get(stage.task)
    return check(order_id, stage.event) if check else ""


def redrive(order_id: str, task: str, *, staff: str, event: str = "", force: bool = False) -> RedriveResult:
    """Send the order's input event of one stage to that stage again, under a new message id.

    ``staff`` is the name recorded on the timeline. A stage that already took effect gets no
    message unless ``force``; with ``force`` it gets one and settles it without a second effect.
    """
    stage = stage_for(task, event)
    if not staff:
        raise RedriveRefused("a re-drive is a staff action: say who asks for it")
    with transaction.atomic():
        original = OutboxEvent.objects.filter(order_id=order_id, kind=stage.event, target_task="").order_by("-id").first()
        if original is None:
            raise RedriveRefused(f"order {order_id} has no {stage.event} event: {stage_label(stage)} never had its input")
        done = effect_already_taken(order_id, stage)
        if done and not force:
            result = RedriveResult(order_id, stage, False, "", done, ())
            emit(REDRIVEN, order_id=order_id, payload=_record(stage, staff, result), message=_text(staff, result))
            return result
        row = emit(REDRIVEN, order_id=order_id, payload={}, message="", target_task=stage.task)
        superseded = _supersede(order_id, stage)
        result = RedriveResult(order_id, stage, True, str(row.event_id), done, superseded)
        kwargs = {"event_id": str(row.event_id), "kind": original.kind, "order_id": order_id, "payload": original.payload}
        row.payload = {**_record(stage, staff, result), "kwargs": kwargs, "input_event": str(original.event_id)}
        row.message = _text(staff, result)[:300]
        row.save(update_fields=["payload", "message"])
    return result


def _supersede(order_id: str, stage: Subscription) -> tuple[int, ...]:
    """Close the stage's parked dead letters for this input event: the re-drive replaces them."""
    letters = DeadLetter.objects.select_for_update().filter(
        order_id=order_id, task=stage.task, status=DeadLetter.Status.PARKED, kwargs__kind=stage.event
    )
    ids = tuple(letters.values_list("pk", flat=True))
    DeadLetter.objects.filter(pk__in=ids).update(status=DeadLetter.Status.DISCARDED)
    return ids


def _record(stage: Subscription, staff: str, result: RedriveResult) -> dict[str, object]:
    return {
        "staff": staff,
        "stage": {"event": stage.event, "task": stage.task, "queue": stage.queue},
        "emitted": result.emitted,
        "already_done": result.already_done,
        "superseded": list(result.superseded),
    }


def _text(staff: str, result: RedriveResult) -> str:
    return f"{staff} re-drove {result.summary}"


def redrive_outcome(message_id: str, task: str) -> str:
    """What became of a re-driven message: ``processed`` (the stage settled it, with or without
    an effect), ``parked`` (it failed again: a dead letter), or ``waiting`` (not yet taken)."""
    try:
        uuid.UUID(message_id)
    except ValueError:
        return "waiting"
    if ProcessedMessage.objects.filter(message_id=message_id, handler=handler_for(task)).exists():
        return "processed"
    if DeadLetter.objects.filter(message_id=message_id, task=task, status=DeadLetter.Status.PARKED).exists():
        return "parked"
    return "waiting"
