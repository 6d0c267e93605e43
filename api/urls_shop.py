from django.urls import path

from api import account_views as accounts
from api import billing_views as billing
from api import commerce_views as commerce
from api import reconciliation_views as reconciliation
from api.shop_views import PluginDetailApi, PluginListApi, PluginTestConnectionApi, ShopDetailApi
from api.payment_views import OrderPaymentMethodsApi, OrderPaymentStartApi, PaymentFeeApi
from api.urls_common import schema_patterns

urlpatterns = [
    path("v1/shop/", ShopDetailApi.as_view(), name="api-shop"),
    path("v1/plugins/", PluginListApi.as_view(), name="api-plugins"),
    path("v1/plugins/<slug:slug>/", PluginDetailApi.as_view(), name="api-plugin"),
    path("v1/plugins/<slug:slug>/fee/", PaymentFeeApi.as_view(), name="api-plugin-fee"),
    path("v1/plugins/<slug:slug>/test-connection/", PluginTestConnectionApi.as_view(),
         name="api-plugin-test-connection"),
    path("v1/plugins/<slug:slug>/accounts/", accounts.PluginAccountListApi.as_view(), name="api-plugin-accounts"),
    path("v1/plugins/<slug:slug>/accounts/reorder/", accounts.PluginAccountReorderApi.as_view(),
         name="api-plugin-accounts-reorder"),
    path("v1/plugins/<slug:slug>/accounts/<slug:key>/", accounts.PluginAccountDetailApi.as_view(),
         name="api-plugin-account"),
    path("v1/plugins/<slug:slug>/accounts/<slug:key>/test-connection/",
         accounts.PluginAccountTestConnectionApi.as_view(), name="api-plugin-account-test-connection"),
    # commerce: catalog, stock, orders, tickets, customers
    path("v1/categories/", commerce.CategoryListApi.as_view(), name="api-categories"),
    path("v1/categories/<int:pk>/", commerce.CategoryDetailApi.as_view(), name="api-category"),
    path("v1/products/", commerce.ProductListApi.as_view(), name="api-products"),
    path("v1/products/<int:pk>/", commerce.ProductDetailApi.as_view(), name="api-product"),
    path("v1/products/<int:pk>/skus/", commerce.ProductSKUCreateApi.as_view(), name="api-product-skus"),
    path("v1/skus/<int:pk>/", commerce.SKUDetailApi.as_view(), name="api-sku"),
    path("v1/skus/<int:pk>/stock/", commerce.SKUStockApi.as_view(), name="api-sku-stock"),
    path("v1/skus/<int:pk>/keys/import/", commerce.SKUKeysImportApi.as_view(), name="api-sku-keys-import"),
    path("v1/orders/", commerce.OrderListApi.as_view(), name="api-orders"),
    path("v1/orders/<str:number>/", commerce.OrderDetailApi.as_view(), name="api-order"),
    path("v1/orders/<str:number>/keys/", commerce.OrderKeysApi.as_view(), name="api-order-keys"),
    path("v1/orders/<str:number>/payments/", OrderPaymentStartApi.as_view(), name="api-order-payments"),
    path("v1/orders/<str:number>/payment-methods/", OrderPaymentMethodsApi.as_view(),
         name="api-order-payment-methods"),
    path("v1/orders/<str:number>/refunds/", commerce.OrderRefundApi.as_view(), name="api-order-refunds"),
    path("v1/orders/<str:number>/cancel/", commerce.OrderCancelApi.as_view(), name="api-order-cancel"),
    path("v1/orders/<str:number>/lines/<int:line_id>/deliver/", commerce.OrderLineDeliverApi.as_view(),
         name="api-order-line-deliver"),
    path("v1/tickets/", commerce.TicketListApi.as_view(), name="api-tickets"),
    path("v1/tickets/<int:pk>/", commerce.TicketDetailApi.as_view(), name="api-ticket"),
    path("v1/tickets/<int:pk>/replies/", commerce.TicketReplyApi.as_view(), name="api-ticket-replies"),
    path("v1/tickets/<int:pk>/reissue/", commerce.TicketReissueApi.as_view(), name="api-ticket-reissue"),
    path("v1/tickets/<int:pk>/close/", commerce.TicketCloseApi.as_view(), name="api-ticket-close"),
    path("v1/reconciliation/", reconciliation.ReconciliationApi.as_view(), name="api-reconciliation"),
    path("v1/reconciliation/findings/<int:pk>/fix/", reconciliation.FindingFixApi.as_view(),
         name="api-reconciliation-fix"),
    path("v1/reconciliation/findings/<int:pk>/dismiss/", reconciliation.FindingDismissApi.as_view(),
         name="api-reconciliation-dismiss"),
    path("v1/customers/", commerce.CustomerListApi.as_view(), name="api-customers"),
    path("v1/customers/<int:pk>/", commerce.CustomerDetailApi.as_view(), name="api-customer"),
    # platform billing of this shop (reachable while the shop is suspended, so it can pay)
    path("v1/billing/", billing.ShopBillingApi.as_view(), name="api-billing"),
    path("v1/billing/plan/", billing.ShopPlanApi.as_view(), name="api-billing-plan"),
    path("v1/billing/cancel/", billing.ShopCancelApi.as_view(), name="api-billing-cancel"),
    path("v1/billing/invoices/", billing.ShopInvoiceListApi.as_view(), name="api-billing-invoices"),
    path("v1/billing/invoices/<int:pk>/download/", billing.ShopInvoiceDownloadApi.as_view(),
         name="api-billing-invoice-download"),
    path("v1/billing/invoices/<int:pk>/pay/", billing.ShopInvoicePayApi.as_view(), name="api-billing-invoice-pay"),
    *schema_patterns("platform_core.urls_shop", "Kameng shop API"),
]
