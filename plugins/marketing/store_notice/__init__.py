"""Store notice: a banner on top of every storefront page (the smallest real plugin)."""
