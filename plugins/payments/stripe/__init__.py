"""Card payments through Stripe Checkout (hosted page, PaymentIntents underneath), signed
webhooks, refunds and status queries over Stripe's REST API. See docs/payments.md."""
