"""The storefront for everyone: axe-core finds no serious or critical accessibility problem on any
customer page (the demo mailbox's included), and every page reads at phone width without scrolling sideways.

axe-core is vendored from the npm registry under tests/vendor/axe-core/ (with its licence) and
injected by Playwright into Debian's Chromium; the phone screenshots go to docs/img/phone-*.png."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from notifications.mailers import MAILBOX_BACKEND
from notifications.services import email_send
from orders.models import Order
from shop.pipeline.models import OutboxEvent
from shop.storefront.models import Product

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    # the cancelled order's state is set by hand: no shared pipeline may move it meanwhile
    pytest.mark.usefixtures("without_shared_pipeline"),
    pytest.mark.skipif(
        not shutil.which(os.environ.get("CHROMIUM", "chromium")) and not os.path.exists("/usr/bin/chromium"),
        reason="needs Chromium (apt-get install chromium)",
    ),
]

AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
IMG = Path(__file__).resolve().parent.parent / "docs" / "img"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
BLOCKING = ("serious", "critical")


def axe_violations(page) -> list[dict]:
    """axe-core's violations of impact serious or critical on the page as it is now."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return [v for v in found if v["impact"] in BLOCKING]


def describe(name: str, violations: list[dict]) -> list[str]:
    """One line per offending element: the rule, where, and what axe says to do."""
    return [
        f"{name}: [{v['impact']}] {v['id']} at {', '.join(map(str, node['target']))}: {v['help']} ({v['helpUrl']})"
        for v in violations
        for node in v["nodes"]
    ]


DANGLING = """() => [...document.querySelectorAll('[aria-describedby]')].flatMap((e) =>
  e.getAttribute('aria-describedby').split(/\\s+/).filter((id) => !document.getElementById(id))
    .map((id) => `#${e.id} is described by #${id}, which is not on the page`))"""


def dangling_descriptions(page) -> list[str]:
    """Fields whose aria-describedby names a missing element (their help or error is never read out);
    axe-core only reports these as "incomplete"."""
    return page.evaluate(DANGLING)


def name_products() -> None:
    """The fixture's products as the seeded catalog names them, so pages read as a shop."""
    names = (("SKU-1", "Brass Mug", "mug"), ("SKU-2", "Copper Lamp", "lamp"), ("SKU-3", "Falcon Compass", "compass"))
    for sku, name, what in names:
        Product.objects.filter(sku=sku).update(name=name, description=f"A fine {what}, made to last.")


def fill_checkout(page, card: str) -> None:
    page.fill("#id_email", "ada@example.com")
    page.fill("#id_name", "Ada Lovelace")
    page.fill("#id_line1", "12 Analytical St")
    page.fill("#id_city", "London")
    page.fill("#id_postal_code", "N1 9GU")
    page.fill("#id_card_number", card)


def walk_the_shop(page, base: str, visit: Callable[[str], None]) -> None:
    """Every customer page in the order a customer meets them; ``visit(name)`` runs on each."""
    page.goto(base + "/")
    visit("catalog")
    page.get_by_role("link", name="Brass Mug").click()
    visit("product")
    page.get_by_role("button", name="Add to cart").click()
    page.goto(base + "/")
    page.get_by_role("listitem").filter(has_text="Copper Lamp").get_by_role("button", name="Add to cart").click()
    page.get_by_role("link", name="Cart (2)").click()
    visit("cart")
    page.get_by_role("link", name="Check out").click()
    visit("checkout")
    page.fill("#id_card_number", "4242 4242 4242 4241")
    page.get_by_role("button", name="Place order").click()
    page.locator(".field-error").first.wait_for()
    visit("checkout-errors")
    fill_checkout(page, "4242 4242 4242 4242")
    page.get_by_role("button", name="Place order").click()
    page.wait_for_url("**/orders/*")
    visit("order")
    public_id = page.url.rsplit("/", 1)[1]
    shipped = {"carrier": "Parcelsim", "tracking_number": "PS123456789GB"}
    for event, payload in (("order.placed", {}), ("shipment.created", shipped)):  # as the email step sends them
        email_send(event_id=str(uuid.uuid4()), event=event, order_id=public_id, payload=payload, handler="a11y")
    page.get_by_role("link", name="The emails we sent you").click()
    page.wait_for_url("**/emails")
    visit("emails")


def test_axe_finds_nothing_serious_on_any_customer_page(page, live_server, catalog, settings):
    settings.MAILERS = {"default": {"BACKEND": MAILBOX_BACKEND}}
    name_products()
    page.set_viewport_size(DESKTOP)
    problems: list[str] = []
    seen: list[str] = []

    def visit(name: str) -> None:
        seen.append(name)
        problems.extend(describe(name, axe_violations(page)))
        problems.extend(f"{name}: {text}" for text in dangling_descriptions(page))

    walk_the_shop(page, live_server.url, visit)

    assert seen == ["catalog", "product", "cart", "checkout", "checkout-errors", "order", "emails"]
    print("\n".join(problems))
    assert not problems, "accessibility problems (axe-core serious or critical, dangling descriptions):\n" + "\n".join(problems)


def test_axe_finds_nothing_serious_on_a_cancelled_order_being_put_right(page, live_server, catalog):
    """The order page's other states: stages done and failed, the retry button, the compensations."""
    page.goto(live_server.url + "/")
    page.get_by_role("listitem").filter(has_text="Product 1").get_by_role("button", name="Add to cart").click()
    page.goto(live_server.url + "/checkout")
    fill_checkout(page, "4000 0000 0000 0341")
    page.get_by_role("button", name="Place order").click()
    page.wait_for_url("**/orders/*")
    public_id = page.url.rsplit("/", 1)[1]
    Order.objects.filter(public_id=public_id).update(status="cancelled")
    for kind in ("payment.authorized", "fraud.cleared", "stock.reserved", "order.ready", "payment.capture_failed"):
        OutboxEvent.objects.create(kind=kind, order_id=public_id, payload={})
    for kind in ("order.cancelled", "payment.voided"):  # the items are still being released
        OutboxEvent.objects.create(kind=kind, order_id=public_id, payload={})
    page.reload()
    page.get_by_role("button", name="Try again with another card").wait_for()
    assert page.locator("#compensations [data-state=in_progress]").count() == 1

    problems = describe("cancelled order", axe_violations(page))

    assert not problems, "\n".join(problems)


def test_axe_catches_a_missing_label(page, live_server, catalog):
    """The check itself can fail: an unlabelled field on the catalog is reported, with its rule."""
    page.goto(live_server.url + "/")
    page.evaluate("document.querySelector('form.add input[type=number]').removeAttribute('aria-label')")
    assert "label" in {v["id"] for v in axe_violations(page)}


def test_every_page_reads_at_phone_width(page, live_server, catalog, settings):
    settings.MAILERS = {"default": {"BACKEND": MAILBOX_BACKEND}}
    name_products()
    IMG.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size(PHONE)
    problems: list[str] = []

    def visit(name: str) -> None:
        problems.extend(describe(f"{name} at 390 px", axe_violations(page)))  # what only the phone layout breaks
        width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        if width[0] > width[1]:
            problems.append(f"{name}: scrollWidth {width[0]} > innerWidth {width[1]}")
        if name != "checkout-errors":
            page.screenshot(path=str(IMG / f"phone-{name}.png"), full_page=True)

    walk_the_shop(page, live_server.url, visit)

    assert not problems, "sideways scrolling or axe-core violations at 390 px:\n" + "\n".join(problems)
