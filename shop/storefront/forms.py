from django import forms

from shop.storefront.checkout import MAX_QUANTITY


class AddToCartForm(forms.Form):
    sku = forms.CharField(max_length=32)
    quantity = forms.IntegerField(min_value=1, max_value=MAX_QUANTITY, initial=1)


class CheckoutForm(forms.Form):
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=64)
    email = forms.EmailField(max_length=254)
    name = forms.CharField(max_length=100)
    line1 = forms.CharField(label="Address", max_length=100)
    line2 = forms.CharField(label="Address (line 2)", max_length=100, required=False)
    city = forms.CharField(max_length=60)
    postal_code = forms.CharField(max_length=16)
    country = forms.RegexField(regex=r"^[A-Za-z]{2}$", max_length=2, initial="GB", help_text="Two-letter code, e.g. GB")
    card_number = forms.RegexField(regex=r"^[0-9 -]{12,23}$", label="Card number", initial="4242 4242 4242 4242")
    exp_month = forms.IntegerField(min_value=1, max_value=12, initial=12)
    exp_year = forms.IntegerField(min_value=2000, max_value=2100, initial=2030)
    cvc = forms.RegexField(regex=r"^[0-9]{3,4}$", label="CVC", initial="123")
