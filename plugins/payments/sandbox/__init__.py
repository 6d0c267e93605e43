"""Sandbox payments: the bundled sandbox gateway (hosted Pay / Fail page, signed webhooks,
refunds) as a payment provider. See docs/payments-sandbox.md."""
