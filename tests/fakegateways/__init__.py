"""Local fake payment gateways for tests: real HTTP on 127.0.0.1, no internet.

A fake checks our requests as the real gateway would (authentication, signature, body
format, idempotency keys), keeps its own state, and sends real signed notifications.

The base (``tests.fakegateways._server``), small on purpose::

    from tests.fakegateways import FakeGateway, Reply, route, send_notification

    class FakeThing(FakeGateway):
        name = "thing"

        @route("POST", r"/v1/charges")
        def create(self, request):                # request: RecordedRequest
            if request.headers.get("Authorization") != "Bearer sk_1":
                return Reply(401, {"error": "bad key"})
            form = request.form()                 # or request.json(), request.query
            return {"id": "ch_1", "amount": int(form["amount"])}   # dict -> 200 JSON

        @route("GET", r"/v1/charges/(?P<charge_id>[^/]+)")
        def show(self, request, charge_id):       # named groups become arguments
            return 404, {"error": "no such charge"}                # (status, body)

    with FakeThing() as fake:                     # start(): a free port, a daemon thread
        fake.base_url                             # "http://127.0.0.1:<port>"
        fake.received("POST", r"/v1/charges")     # every request: method, path, query,
                                                  # headers (case-insensitive), raw body
        fake.stall("POST", r"/v1/charges", 2.0)   # handle the next one, answer 2 s late
        fake.fail("POST", r"/v1/charges", 503)    # answer the next one 503, unhandled
        fake.crashes                              # exceptions raised by handlers
        send_notification(url, body, headers)     # a real HTTP POST (a gateway's notify)

Handlers run one at a time under ``fake.lock`` (state needs no more locking); a stall
sleeps outside it. Notifications reach the Django app through
``tests.payments.bridge.ShopBridge``: ``bridge.call(lambda: send_notification(
bridge.url("/hooks/payments/<slug>/"), body, headers))`` delivers over real HTTP to a
local server that hands the request to Django's test client on the test's own
database connection, so the signed body and headers arrive byte for byte.

Gateways: ``tests.fakegateways.stripe.FakeStripe``, ``tests.fakegateways.paypal.FakePayPal``.
"""
from tests.fakegateways._server import FakeGateway, RecordedRequest, Reply, route, send_notification

__all__ = ["FakeGateway", "RecordedRequest", "Reply", "route", "send_notification"]
