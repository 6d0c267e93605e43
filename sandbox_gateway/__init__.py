"""The Kameng sandbox gateway: a small, real HTTP payment gateway that behaves like a
Stripe-style one (API keys, hosted pay page with Pay / Fail, signed webhooks, refunds,
settlements), so shops and tests take payments end to end without a real provider.

Standard library only (wsgiref + sqlite3); it shares no code with Django. Run it with
``python -m sandbox_gateway --port 8001``; wire format in docs/payments-sandbox.md."""
from sandbox_gateway.server import build_app, create_server, serve_in_thread
from sandbox_gateway.signing import HEADER as SIGNATURE_HEADER
from sandbox_gateway.signing import signature_header, webhook_secret_for

__all__ = ["SIGNATURE_HEADER", "build_app", "create_server", "serve_in_thread", "signature_header",
           "webhook_secret_for"]
