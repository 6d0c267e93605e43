"""What every real payment gateway adapter shares: the HTTP client, typed errors, amounts.

The API, kept small on purpose (adapters for Stripe, PayPal, Alipay, WeChat Pay and
EPay all code against it):

``GatewayPaymentPlugin``
    A ``PaymentPlugin`` base. Set ``gateway_name`` (shown in messages),
    ``default_base_url`` and ``api_base_setting`` (the name of a Django setting that
    overrides the base URL platform-wide, e.g. ``KAMENG_STRIPE_API_BASE``; tests point it
    at a fake; never a shop setting, so no shop can aim our requests at another host;
    override the ``base_url`` property for sandbox/live switches); read settings and secrets with ``self.settings`` and
    ``self.require_secret(field, label)`` (raises ``PaymentMisconfigured`` when unset);
    talk HTTP through ``self.http`` (one ``GatewayClient`` per adapter instance, which
    knows every secret of the shop's configuration so it can keep them out of logs).
    ``supports_test_connection = True`` + ``test_connection()`` (returns a plain-words
    success message or raises ``PaymentError``) adds a "Test connection" button to the
    plugin's settings page in the shop console.

``GatewayClient(slug=, name=, base_url=, secrets=(), idempotency_header="Idempotency-Key")``
    ``request(method, path, *, params=, data=, json=, content=, headers=, idempotency_key=,
    idempotent=None) -> GatewayResponse``. One ``requests.Session``; timeouts
    ``(3.05 s connect, 10 s read)`` (``settings.KAMENG_PAYMENT_HTTP_TIMEOUT`` overrides).
    Retries with exponential backoff (``KAMENG_PAYMENT_HTTP_BACKOFF`` seconds, doubled
    each time, ``Retry-After`` honoured up to 5 s) on connection errors, timeouts, 429
    and 5xx, but **only** for idempotent calls: GET/HEAD, calls given an
    ``idempotency_key`` (sent in ``idempotency_header`` and reused on every attempt, so a
    timeout never charges twice), or calls marked ``idempotent=True`` (queries sent as
    POST). When attempts run out: ``PaymentRetryable``. Every other status is returned
    for the adapter to read; ``client.error_for(response, detail)`` turns a refusal into
    the right typed error (401/403 misconfigured, 402 declined, 429/5xx retryable).
    Each attempt is logged on ``kameng.payments.<slug>``: method, path (no query
    string), status, duration, attempt, never bodies or headers.

``redact(text, secrets)`` / ``redact_headers(headers)``
    Replace secret values / sensitive header values with ``[redacted]``.

Amounts (integers in minor units everywhere in Kameng):
    ``to_decimal_string(1234, "CNY") == "12.34"``, ``to_decimal_string(1234, "JPY") == "1234"``;
    ``from_decimal_string("12.34", "CNY") == 1234`` refuses signs, exponents and more
    decimals than the currency has; both take optional ``gateway_exponents`` for
    currencies a gateway writes with other decimals (PayPal: HUF, TWD without);
    ``to_gateway_minor`` / ``from_gateway_minor`` convert for minor-unit gateways whose
    exponent for a currency differs from ours (zero-decimal JPY and KRW are the same
    number on both sides).

Typed errors live in ``plugins.payment``: ``PaymentDeclined``, ``PaymentRetryable``,
``PaymentMisconfigured`` (all ``PaymentError``, with plain-words ``message``).
"""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings

from platform_core.money import exponent, parse_major
from plugins.payment import (
    PaymentDeclined,
    PaymentError,
    PaymentMisconfigured,
    PaymentPlugin,
    PaymentRetryable,
)

__all__ = [
    "REDACTED", "GatewayClient", "GatewayPaymentPlugin", "GatewayResponse", "from_decimal_string",
    "from_gateway_minor", "redact", "redact_headers", "to_decimal_string", "to_gateway_minor",
]

DEFAULT_TIMEOUT = (3.05, 10.0)  # (connect, read) seconds: a buyer is waiting
DEFAULT_BACKOFF = 0.25  # first pause between attempts, doubled each time
MAX_ATTEMPTS = 3
MAX_PAUSE = 5.0
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REDACTED = "[redacted]"
_SENSITIVE_HEADER = re.compile(r"authorization|cookie|secret|token|signature|key|password|wechatpay-", re.I)


# --- redaction -------------------------------------------------------------------------

def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every occurrence of each secret value replaced by ``[redacted]``."""
    for secret in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``headers`` safe to log: credentials, signatures and keys masked."""
    return {name: (REDACTED if _SENSITIVE_HEADER.search(name) else value) for name, value in headers.items()}


# --- amounts ---------------------------------------------------------------------------

def _check_minor(amount_minor: int) -> int:
    if not isinstance(amount_minor, int) or isinstance(amount_minor, bool) or amount_minor < 0:
        raise ValueError(f"{amount_minor!r} is not an amount in minor units")
    return amount_minor


def _exponent_at(currency: str, gateway_exponents: Mapping[str, int] | None) -> int:
    return (gateway_exponents or {}).get(currency.upper(), exponent(currency))


def to_decimal_string(amount_minor: int, currency: str, gateway_exponents: Mapping[str, int] | None = None) -> str:
    """1234 CNY -> "12.34"; 1234 JPY -> "1234" (for gateways that take major units).
    ``gateway_exponents``: currencies the gateway writes with other decimals than ISO
    (PayPal takes HUF and TWD without decimals); refused if the amount does not fit."""
    exp = _exponent_at(currency, gateway_exponents)
    value = to_gateway_minor(amount_minor, currency, gateway_exponents)
    if not exp:
        return str(value)
    whole, fraction = divmod(value, 10 ** exp)
    return f"{whole}.{fraction:0{exp}d}"


def from_decimal_string(text: str, currency: str, gateway_exponents: Mapping[str, int] | None = None) -> int:
    """"12.34" CNY -> 1234. Refuses signs, exponents, NaN and more decimals than the
    currency has ("12.345" CNY, "12.5" JPY) with ``ValueError``."""
    if not isinstance(text, (str, int)) or isinstance(text, bool):
        raise ValueError(f"{text!r} is not an amount")
    if not gateway_exponents or currency.upper() not in gateway_exponents:
        return parse_major(str(text), currency)
    raw, exp = str(text).strip(), _exponent_at(currency, gateway_exponents)
    if not re.fullmatch(r"[0-9]{1,15}(\.[0-9]+)?", raw):
        raise ValueError(f"{text!r} is not an amount")
    minor = Decimal(raw) * (10 ** exp)
    if minor != minor.to_integral_value():
        raise ValueError(f"{currency} amounts at this gateway have at most {exp} decimals")
    return from_gateway_minor(int(minor), currency, gateway_exponents)


def to_gateway_minor(amount_minor: int, currency: str, gateway_exponents: Mapping[str, int] | None = None) -> int:
    """Our minor units -> a minor-unit gateway's integer. Equal unless the gateway counts
    a currency with another exponent (``gateway_exponents``, e.g. a gateway that takes
    ISK in hundredths while we count whole krónur)."""
    amount_minor = _check_minor(amount_minor)
    ours = exponent(currency)
    theirs = (gateway_exponents or {}).get(currency.upper(), ours)
    if theirs >= ours:
        return amount_minor * 10 ** (theirs - ours)
    factor = 10 ** (ours - theirs)
    if amount_minor % factor:
        raise ValueError(f"{currency} amounts at this gateway have at most {theirs} decimals")
    return amount_minor // factor


def from_gateway_minor(value: Any, currency: str, gateway_exponents: Mapping[str, int] | None = None) -> int:
    """A minor-unit gateway's integer -> our minor units; refuses fractions of our unit."""
    value = _check_minor(value)
    ours = exponent(currency)
    theirs = (gateway_exponents or {}).get(currency.upper(), ours)
    if ours >= theirs:
        return value * 10 ** (ours - theirs)
    factor = 10 ** (theirs - ours)
    if value % factor:
        raise ValueError(f"{value} is a fraction of the smallest {currency} unit")
    return value // factor


# --- HTTP ------------------------------------------------------------------------------

@dataclass
class GatewayResponse:
    status: int
    headers: Mapping[str, str]
    content: bytes
    attempts: int = 1
    _json: Any = field(default=None, repr=False)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        if self._json is None:
            try:
                import json as jsonlib

                self._json = jsonlib.loads(self.content or b"null")
            except ValueError:
                self._json = None
        return self._json

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def _setting(name: str, default):
    return getattr(settings, name, default)


class GatewayClient:
    """One gateway's HTTP client: a session, timeouts, safe retries, quiet logging."""

    def __init__(self, *, slug: str, name: str, base_url: str, secrets: Iterable[str | None] = (),
                 idempotency_header: str = "Idempotency-Key", default_headers: Mapping[str, str] | None = None):
        self.slug, self.name = slug, name
        self.base_url = base_url.rstrip("/")
        self.secrets = [s for s in secrets if s]
        self.idempotency_header = idempotency_header
        self.logger = logging.getLogger(f"kameng.payments.{slug}")
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": "Kameng/1.0", "Accept": "application/json"})
        self.session.headers.update(default_headers or {})

    def close(self) -> None:
        self.session.close()

    def _pause(self, attempt: int, response: requests.Response | None) -> float:
        pause = float(_setting("KAMENG_PAYMENT_HTTP_BACKOFF", DEFAULT_BACKOFF)) * 2 ** (attempt - 1)
        retry_after = response.headers.get("Retry-After", "") if response is not None else ""
        if retry_after.isdigit():
            pause = max(pause, float(retry_after))
        return min(pause, MAX_PAUSE)

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, data: Any = None,
                json: Any = None, content: bytes | None = None, headers: Mapping[str, str] | None = None,
                idempotency_key: str = "", idempotent: bool | None = None) -> GatewayResponse:
        method = method.upper()
        url = path if path.startswith(("http://", "https://")) else f"{self.base_url}{path}"
        log_path = redact(urlsplit(url).path, self.secrets)
        headers = dict(headers or {})
        if idempotency_key:
            headers[self.idempotency_header] = idempotency_key
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS or bool(idempotency_key)
        attempts = int(_setting("KAMENG_PAYMENT_HTTP_ATTEMPTS", MAX_ATTEMPTS)) if idempotent else 1
        timeout = tuple(_setting("KAMENG_PAYMENT_HTTP_TIMEOUT", DEFAULT_TIMEOUT))
        for attempt in range(1, attempts + 1):
            started = time.monotonic()
            response, failure = None, ""
            try:
                response = self.session.request(method, url, params=params, data=data if content is None else content,
                                                json=json, headers=headers, timeout=timeout, allow_redirects=False)
            except requests.Timeout:
                failure = "timeout"
            except requests.ConnectionError:
                failure = "connection error"
            except requests.RequestException as exc:  # malformed URL and the like: not passing
                self._log(method, log_path, type(exc).__name__, started, attempt, logging.ERROR)
                raise PaymentMisconfigured(f"Kameng could not send the request to {self.name}; "
                                           f"check the {self.name} settings.") from None
            status = response.status_code if response is not None else failure
            last = attempt == attempts
            self._log(method, log_path, status, started, attempt,
                      logging.WARNING if failure or (response is not None and response.status_code >= 500)
                      else logging.INFO)
            if response is not None and response.status_code not in RETRY_STATUSES:
                return GatewayResponse(response.status_code, response.headers, response.content, attempt)
            if last:
                if response is not None:
                    return GatewayResponse(response.status_code, response.headers, response.content, attempt)
                if failure == "timeout":
                    raise PaymentRetryable(f"{self.name} did not answer in time. Try again in a moment.")
                raise PaymentRetryable(f"{self.name} is not reachable. Try again in a moment.")
            time.sleep(self._pause(attempt, response))
        raise AssertionError("unreachable")  # pragma: no cover

    def _log(self, method: str, path: str, status, started: float, attempt: int, level: int) -> None:
        duration_ms = round((time.monotonic() - started) * 1000)
        self.logger.log(level, "%s %s %s -> %s in %d ms (attempt %d)", self.name, method, path, status, duration_ms,
                        attempt, extra={"gateway": self.slug, "http_method": method, "http_path": path,
                                        "http_status": status, "duration_ms": duration_ms, "attempt": attempt})

    def error_for(self, response: GatewayResponse, detail: str = "") -> PaymentError:
        """The typed error for a refused call; ``detail`` is the gateway's own message
        (redacted here, so an echoed key never reaches a buyer or a log)."""
        detail = redact((detail or "").strip(), self.secrets)[:300]
        status = response.status
        if status in (401, 403):
            return PaymentMisconfigured(f"{self.name} refused the shop's credentials; check the {self.name} "
                                        f"settings in the shop console.")
        if status == 402:
            return PaymentDeclined(f"{self.name} declined the payment" + (f": {detail}" if detail else "."))
        if status in RETRY_STATUSES:
            return PaymentRetryable(f"{self.name} had a problem (HTTP {status}). Try again in a moment.")
        return PaymentError(f"{self.name} refused the request: {detail or f'HTTP {status}'}")


class GatewayPaymentPlugin(PaymentPlugin):
    """Base of real gateway adapters (see the module docstring)."""

    gateway_name: str = ""
    default_base_url: str = ""
    #: header that carries idempotency keys at this gateway
    idempotency_header: str = "Idempotency-Key"
    #: Django setting that overrides the API base URL platform-wide (tests point it at a
    #: fake). Never a shop setting: a shop must not aim our credentials at any host.
    api_base_setting: str = ""
    supports_test_connection: bool = False

    @property
    def base_url(self) -> str:
        override = getattr(settings, self.api_base_setting, "") if self.api_base_setting else ""
        return (override or self.default_base_url).rstrip("/")

    def secret_values(self) -> list[str]:
        """Every decrypted secret of this configuration (for redaction)."""
        return [value for value in (self.secret(name) for name in self.secret_fields) if value]

    @property
    def http(self) -> GatewayClient:
        client = self.__dict__.get("_http")
        if client is None:
            client = self.__dict__["_http"] = GatewayClient(
                slug=self.slug, name=self.gateway_name or self.name, base_url=self.base_url,
                secrets=self.secret_values(), idempotency_header=self.idempotency_header)
        return client

    def require_secret(self, field_name: str, label: str) -> str:
        value = self.secret(field_name)
        if not value:
            raise PaymentMisconfigured(f"{self.gateway_name or self.name} is not set up: enter the {label} in the "
                                       f"shop console (Plugins).")
        return value

    def test_connection(self) -> str:
        """Call the gateway with the stored credentials; a success message or ``PaymentError``."""
        raise PaymentError(f"{self.gateway_name or self.name} offers no connection test.")
