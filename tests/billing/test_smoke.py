def test_test_shops_start_on_a_pro_trial(alpha, plans):
    from billing.models import Subscription

    sub = Subscription.objects.get(shop=alpha)
    assert sub.status == "trial" and sub.plan.code == "pro"
    assert [e.kind for e in sub.events.all()] == ["subscription.started"]
    assert set(plans) == {"free", "pro", "business"}
