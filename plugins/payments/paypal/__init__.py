"""PayPal Checkout through the Orders v2 REST API: create -> buyer approves -> capture,
webhooks verified by PayPal's verify-webhook-signature API, refunds. See docs/payments.md."""
