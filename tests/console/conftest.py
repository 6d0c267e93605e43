from tests.console.fixtures import carol, paid_order, refund_gateway  # noqa: F401
