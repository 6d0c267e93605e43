from plugins.payment import PaymentPlugin, RefundOutcome


class RefundGatewayPlugin(PaymentPlugin):
    slug = "test-refunds"
    name = "Test refunds"
    public_name = "Test gateway"
    description = "Test double: payments are recorded by the tests, refunds always answer at once."

    #: (payment id, amount) of every refund asked for, across shops
    refunds: list[tuple[int, int]] = []
    #: set to a message to make the next refunds fail like a gateway refusing them
    refuse_with: str = ""

    def refund(self, payment, amount):
        if type(self).refuse_with:
            return RefundOutcome(succeeded=False, message=type(self).refuse_with)
        type(self).refunds.append((payment.pk, amount))
        return RefundOutcome(succeeded=True, external_id=f"re_{payment.pk}_{len(type(self).refunds)}")
