"""EPay (易支付) aggregator: submit.php / mapi.php checkout, MD5-signed notifies that are
confirmed with an order query before anything is credited. See docs/payments-china.md."""
