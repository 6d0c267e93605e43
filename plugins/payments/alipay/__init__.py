"""Alipay (支付宝): computer and phone website checkout, QR codes (当面付), RSA2-signed
requests and notifications, queries and refunds. See docs/payments-china.md."""
