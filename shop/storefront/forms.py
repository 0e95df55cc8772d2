"""The storefront's forms. Every field is checked in one pass, and each problem is said once,
on the field it concerns (the checkout's card checks are the same as the API's)."""

from __future__ import annotations

from datetime import date
from typing import Any

from django import forms

from shop.storefront.checkout import MAX_QUANTITY, luhn_ok

# The gateway's test cards, offered as one-click choices on the checkout form.
TEST_CARDS = (
    ("4242 4242 4242 4242", "approved"),
    ("4000 0000 0000 0002", "declined"),
    ("4000 0000 0000 9995", "declined: insufficient funds"),
    ("4000 0000 0000 0119", "the payment provider never answers: retried, then cancelled"),
    ("4000 0000 0000 0341", "authorised, but the payment cannot be taken"),
)


class AddToCartForm(forms.Form):
    sku = forms.CharField(max_length=32)
    quantity = forms.IntegerField(min_value=1, max_value=MAX_QUANTITY, initial=1)


class CartLineForm(forms.Form):
    """A cart line's new quantity; zero removes it."""

    sku = forms.CharField(max_length=32)
    quantity = forms.IntegerField(min_value=0, max_value=MAX_QUANTITY)


class CheckoutForm(forms.Form):
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=64)
    email = forms.EmailField(max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    name = forms.CharField(max_length=100, label="Full name", widget=forms.TextInput(attrs={"autocomplete": "name"}))
    line1 = forms.CharField(label="Address", max_length=100, widget=forms.TextInput(attrs={"autocomplete": "address-line1"}))
    line2 = forms.CharField(
        label="Address (line 2)",
        max_length=100,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "address-line2"}),
    )
    city = forms.CharField(max_length=60, widget=forms.TextInput(attrs={"autocomplete": "address-level2"}))
    postal_code = forms.CharField(max_length=16, widget=forms.TextInput(attrs={"autocomplete": "postal-code"}))
    country = forms.RegexField(
        regex=r"^[A-Za-z]{2}$",
        max_length=2,
        initial="GB",
        widget=forms.TextInput(attrs={"autocomplete": "country"}),
        help_text="Two-letter code, e.g. GB",
        error_messages={"invalid": "Enter a two-letter country code, e.g. GB."},
    )
    card_number = forms.CharField(
        max_length=23,
        label="Card number",
        initial="4242 4242 4242 4242",
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "cc-number"}),
    )
    exp_month = forms.IntegerField(
        min_value=1,
        max_value=12,
        initial=12,
        label="Expiry month",
        widget=forms.NumberInput(attrs={"autocomplete": "cc-exp-month"}),
    )
    exp_year = forms.IntegerField(
        min_value=2000,
        max_value=2100,
        initial=2030,
        label="Expiry year",
        widget=forms.NumberInput(attrs={"autocomplete": "cc-exp-year"}),
    )
    cvc = forms.RegexField(
        regex=r"^[0-9]{3,4}$",
        label="CVC",
        initial="123",
        widget=forms.TextInput(attrs={"autocomplete": "cc-csc", "inputmode": "numeric"}),
        error_messages={"invalid": "Enter the 3 or 4 digits on the back."},
    )

    def clean_card_number(self) -> str:
        number = self.cleaned_data["card_number"].replace(" ", "").replace("-", "")
        if not number.isdigit() or not 12 <= len(number) <= 19:
            raise forms.ValidationError("Enter the card's 12 to 19 digits.")
        if not luhn_ok(number):
            raise forms.ValidationError("This card number is not valid (checksum): check the digits.")
        return number

    def clean(self) -> dict[str, Any]:
        """The expiry is checked in the same pass as the number, so both are reported at once."""
        data = super().clean()
        month, year = data.get("exp_month"), data.get("exp_year")
        today = date.today()
        if month and year and (year, month) < (today.year, today.month):
            self.add_error("exp_year", "This card has expired.")
        return data
