"""Shop customers (buyers and members) and their wallets."""
from __future__ import annotations

import re

from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from platform_core.customers.models import Customer, WalletEntry

SESSION_KEY = "kameng_customer_id"
PHONE_RE = re.compile(r"^\+?[0-9]{6,15}$")


class CustomerError(Exception):
    def __init__(self, message: str, *, field: str = "", code: str = "invalid"):
        super().__init__(message)
        self.message, self.field, self.code = message, field, code


def _split_login(login: str) -> tuple[str | None, str | None]:
    login = (login or "").strip()
    if "@" in login:
        try:
            validate_email(login)
        except ValidationError:
            raise CustomerError("Enter a valid e-mail address or phone number.", field="login") from None
        return login.lower(), None
    phone = re.sub(r"[\s-]", "", login)
    if not PHONE_RE.match(phone):
        raise CustomerError("Enter a valid e-mail address or phone number.", field="login")
    return None, phone


def customer_register(*, login: str, password: str, name: str = "") -> Customer:
    email, phone = _split_login(login)
    try:
        validate_password(password)
    except ValidationError as exc:
        raise CustomerError(" ".join(exc.messages), field="password") from None
    try:
        with transaction.atomic():
            customer = Customer(email=email, phone=phone, name=(name or "")[:60])
            customer.set_password(password)
            customer.save()
    except IntegrityError:
        raise CustomerError("An account with this e-mail or phone exists; sign in instead.", field="login",
                            code="exists") from None
    return customer


def customer_authenticate(*, login: str, password: str) -> Customer | None:
    try:
        email, phone = _split_login(login)
    except CustomerError:
        return None
    customer = (Customer.objects.filter(email__iexact=email) if email else Customer.objects.filter(phone=phone)) \
        .filter(is_active=True).first()
    if customer is None:
        make_password(password)  # same cost for unknown accounts
        return None
    if not customer.check_password(password):
        return None
    customer.last_login = timezone.now()
    customer.save(update_fields=["last_login"])
    return customer


def customer_login(request, customer: Customer) -> None:
    request.session.cycle_key()
    request.session[SESSION_KEY] = customer.pk


def customer_logout(request) -> None:
    request.session.pop(SESSION_KEY, None)
    request.session.cycle_key()


def current_customer(request) -> Customer | None:
    customer_id = request.session.get(SESSION_KEY) if hasattr(request, "session") else None
    if not customer_id:
        return None
    return Customer.objects.filter(pk=customer_id, is_active=True).first()


# --- wallet --------------------------------------------------------------------------

class InsufficientBalance(CustomerError):
    pass


def _move(customer: Customer, amount: int, kind: str, reference: str, order=None) -> WalletEntry:
    if not isinstance(amount, int) or amount == 0:
        raise CustomerError("Wallet movements are non-zero integer amounts.", field="amount")
    with transaction.atomic():
        locked = Customer.objects.select_for_update().get(pk=customer.pk)
        balance = locked.wallet_balance + amount
        if balance < 0:
            raise InsufficientBalance("Your wallet balance is too low.", field="amount", code="insufficient")
        entry = WalletEntry.objects.create(customer=locked, kind=kind, amount=amount, balance_after=balance,
                                           order=order, reference=reference)
        locked.wallet_balance = balance
        locked.save(update_fields=["wallet_balance"])
    customer.wallet_balance = balance
    return entry


def wallet_credit(*, customer: Customer, amount: int, kind: str, reference: str = "", order=None) -> WalletEntry:
    if amount <= 0:
        raise CustomerError("Credit a positive amount.", field="amount")
    return _move(customer, amount, kind, reference, order)


def wallet_debit(*, customer: Customer, amount: int, kind: str, reference: str = "", order=None) -> WalletEntry:
    if amount <= 0:
        raise CustomerError("Debit a positive amount.", field="amount")
    return _move(customer, -amount, kind, reference, order)
