"""A payment provider used only by the test-suite: refunds succeed (or fail on demand)
without any gateway, so order refunds can be tested end to end."""
