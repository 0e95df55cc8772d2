"""The operations page's staff actions: pause and resume a stage, re-drive an order's stage,
replay dead letters in bulk. Each is a form posted to a thin view that calls the pipeline's
service (``shop/pipeline/consumers.py``, ``redrive.py``, ``replays.py``) and comes back to the
page with what the service did, or why it refused, as a message: bad input is a form error
that names what was wrong, never a 500, and nothing is half done.
"""

from __future__ import annotations

import logging

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from shop.ops import scenarios
from shop.ops.access import staff_only
from shop.pipeline import consumers, redrive, replays
from shop.pipeline.admin import staff_name
from shop.pipeline.events import PIPELINE, QUEUES

log = logging.getLogger("shop.ops")


def _stage_choices() -> list[tuple[str, str]]:
    return [(f"{s.task}|{s.event}", redrive.stage_label(s)) for s in PIPELINE]


def _task_choices() -> list[tuple[str, str]]:
    tasks = dict.fromkeys(s.task for s in PIPELINE)
    return [("", "every task"), *((task, task.rsplit(".", 1)[-1]) for task in tasks)]


class QueueForm(forms.Form):
    queue = forms.ChoiceField(choices=[(q, q) for q in QUEUES])
    action = forms.ChoiceField(choices=[("pause", "pause"), ("resume", "resume")])


class RedriveForm(forms.Form):
    order_id = forms.CharField(max_length=64, strip=True, label="order")
    stage = forms.ChoiceField(choices=_stage_choices)
    force = forms.BooleanField(required=False, help_text="send it even if the stage already took effect")


class ReplayForm(forms.Form):
    task = forms.ChoiceField(choices=_task_choices, required=False)
    since = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    until = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))

    def clean(self) -> dict:
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            raise forms.ValidationError("'since' must be before 'until'.")
        return data


def forms_for_page() -> dict[str, object]:
    return {
        "queue_form": QueueForm(),
        "redrive_form": RedriveForm(),
        "replay_form": ReplayForm(),
        "scenarios": scenarios.SCENARIOS if scenarios.available() else {},
    }


def _refuse(request: HttpRequest, form: forms.Form) -> HttpResponse:
    parts = [" ".join(errs) if field == "__all__" else f"{field}: {' '.join(errs)}" for field, errs in form.errors.items()]
    errors = "; ".join(parts)
    messages.error(request, f"Nothing done: {errors}")
    return redirect("ops")


@require_POST
@staff_only
def queue_action(request: HttpRequest) -> HttpResponse:
    """Pause a stage's consumers (its backlog then grows on the map) or resume them."""
    form = QueueForm(request.POST)
    if not form.is_valid():
        return _refuse(request, form)
    queue, action = form.cleaned_data["queue"], form.cleaned_data["action"]
    change_queue = consumers.pause_queue if action == "pause" else consumers.resume_queue
    try:
        change = change_queue(queue, staff=staff_name(request))
    except consumers.RemoteControlError as exc:
        messages.error(request, f"{queue} not {action}d: {exc}")
        return redirect("ops")
    done = f"{queue} {action}d by {', '.join(change.answered)}"
    if change.missing:
        messages.warning(request, f"{done}; no answer from {', '.join(change.missing)}")
    else:
        messages.success(request, done)
    log.info("%s %sd %s (answered: %s)", staff_name(request), action, queue, ", ".join(change.answered))
    return redirect("ops")


@require_POST
@staff_only
def redrive_action(request: HttpRequest) -> HttpResponse:
    """Re-drive one stage of one order: its input event again, under a new message id."""
    form = RedriveForm(request.POST)
    if not form.is_valid():
        return _refuse(request, form)
    task, _, event = form.cleaned_data["stage"].partition("|")
    order_id = form.cleaned_data["order_id"]
    try:
        result = redrive.redrive(order_id, task, event=event, staff=staff_name(request), force=form.cleaned_data["force"])
    except redrive.RedriveRefused as exc:
        messages.error(request, f"Order {order_id} not re-driven: {exc}")
        return redirect("ops")
    messages.success(request, f"Order {order_id}: {result.summary}")
    return redirect("ops")


@require_POST
@staff_only
def replay_action(request: HttpRequest) -> HttpResponse:
    """Replay the parked dead letters of a task (or all) parked within a time range."""
    form = ReplayForm(request.POST)
    if not form.is_valid():
        return _refuse(request, form)
    data = form.cleaned_data
    bulk = replays.replay_matching(staff=staff_name(request), task=data["task"], since=data["since"], until=data["until"])
    outcomes = replays.replay_outcomes(bulk.replayed)
    counted: dict[str, int] = {}
    for outcome in outcomes.values():
        counted[outcome] = counted.get(outcome, 0) + 1
    fate = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counted.items())) or "none"
    messages.success(request, f"Replayed {bulk.count} dead letter(s) ({fate}); {len(bulk.skipped)} no longer parked")
    return redirect("ops")


@require_POST
@staff_only
def scenario_action(request: HttpRequest) -> HttpResponse:
    """Start a demo scenario in a process of its own; the page shows it running, then what it did."""
    name = request.POST.get("scenario", "")
    try:
        run = scenarios.start(name, staff=staff_name(request))
    except scenarios.ScenarioRefused as exc:
        messages.error(request, f"Nothing started: {exc}")
        return redirect("ops")
    messages.success(request, f"Started {scenarios.SCENARIOS[run.name]} (run {run.pk}): watch the map")
    return redirect("ops")
