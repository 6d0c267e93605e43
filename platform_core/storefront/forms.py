"""Storefront forms. They check shape and presence; the services decide the rest
(their OrderError names the field, which the view puts back on the form)."""
from __future__ import annotations

import re

from django import forms

from platform_core.catalog.models import Product
from platform_core.money import parse_major
from platform_core.orders.services import MAX_QUANTITY
from platform_core.storefront.i18n import msg, reason_choices, t

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


class StorefrontForm(forms.Form):
    """Puts a service error (OrderError / CustomerError, which name a field) on the form."""

    def add_service_error(self, field: str, message: str) -> None:
        self.add_error(field if field in self.fields else None, message)


class CheckoutForm(StorefrontForm):
    token = forms.CharField(widget=forms.HiddenInput, max_length=64)
    sku = forms.IntegerField(min_value=1, max_value=2**62)
    quantity = forms.IntegerField()  # the range is the product's, checked in clean()
    account = forms.CharField(max_length=120, required=False)
    contact = forms.CharField(max_length=254, required=False)
    query_password = forms.CharField(max_length=64, required=False, widget=forms.PasswordInput)
    payment = forms.ChoiceField(widget=forms.RadioSelect)

    def __init__(self, *args, product_view, customer=None, providers=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.product_view = product_view
        self.customer = customer
        product = product_view.product
        self.fields["payment"].choices = [(p.slug, p.public_name or p.name) for p in providers]
        if len(providers) == 1:
            self.fields["payment"].initial = providers[0].slug
        if product.type == Product.Type.TOPUP:
            self.fields["account"].required = True
            self.fields["account"].label = product.account_label or msg("account_label_default")
        else:
            del self.fields["account"]
        if customer is not None:  # the account's contact is used; no lookup password needed
            del self.fields["contact"]
            del self.fields["query_password"]
        else:
            self.fields["contact"].required = True
            self.fields["query_password"].required = True

    def clean_token(self):
        token = self.cleaned_data["token"]
        if not TOKEN_RE.match(token):
            raise forms.ValidationError(msg("form_expired"))
        return token

    def clean_sku(self):
        view = self.product_view.sku(self.cleaned_data["sku"])
        if view is None:
            raise forms.ValidationError(t("This product is not available."))
        return view

    def clean(self):
        data = super().clean()
        view, quantity = data.get("sku"), data.get("quantity")
        product = self.product_view.product
        if quantity is not None:
            high = min(product.max_quantity, MAX_QUANTITY)
            if not product.min_quantity <= quantity <= high:
                self.add_error("quantity", t(f"Quantity must be between {product.min_quantity} and {high}."))
        if view is not None and not view.in_stock:
            self.add_error("sku", msg("sold_out_notice"))
        return data


class PayForm(StorefrontForm):
    payment = forms.ChoiceField(widget=forms.RadioSelect)

    def __init__(self, *args, providers=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["payment"].choices = [(p.slug, p.public_name or p.name) for p in providers]
        if providers:
            self.fields["payment"].initial = providers[0].slug


class LookupForm(StorefrontForm):
    number = forms.CharField(max_length=24)
    contact = forms.CharField(max_length=254)
    query_password = forms.CharField(max_length=64, widget=forms.PasswordInput)


class TicketForm(StorefrontForm):
    reason = forms.ChoiceField()
    message = forms.CharField(max_length=4000, widget=forms.Textarea(attrs={"rows": 4}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reason"].choices = reason_choices()


class ReplyForm(StorefrontForm):
    body = forms.CharField(max_length=4000, widget=forms.Textarea(attrs={"rows": 3}))


class RegisterForm(StorefrontForm):
    login = forms.CharField(max_length=254)
    password = forms.CharField(max_length=128, widget=forms.PasswordInput)
    name = forms.CharField(max_length=60, required=False)


class LoginForm(StorefrontForm):
    login = forms.CharField(max_length=254)
    password = forms.CharField(max_length=128, widget=forms.PasswordInput)


class TopupForm(StorefrontForm):
    amount = forms.CharField(max_length=12)
    payment = forms.ChoiceField(widget=forms.RadioSelect)

    def __init__(self, *args, currency: str = "CNY", providers=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.currency = currency
        self.fields["payment"].choices = [(p.slug, p.public_name or p.name) for p in providers]
        if providers:
            self.fields["payment"].initial = providers[0].slug

    def clean_amount(self):
        try:
            amount = parse_major(self.cleaned_data["amount"], self.currency)
        except (ValueError, ArithmeticError):
            raise forms.ValidationError(t("Enter an amount like 10 or 9.90.")) from None
        if amount <= 0 or amount > 10_000_000:
            raise forms.ValidationError(t("Top-up amount must be between 0.01 and 100,000."))
        return amount
