"""WeChat Pay API v3 (微信支付): Native (QR) and H5 checkout, signed requests and
notifications, encrypted resources, queries and refunds. See docs/payments-china.md."""
