"""Platform host: landing, signup, merchant sign-in, platform console, platform API."""
from django.contrib.auth import views as auth_views
from django.urls import include, path

from platform_core import views
from platform_core.auth_forms import RateLimitedAuthenticationForm
from platform_core.admin_sites import platform_console

urlpatterns = [
    path("", views.landing, name="landing"),
    path("signup/", views.signup, name="signup"),
    path("login/", auth_views.LoginView.as_view(template_name="kameng/platform/login.html",
                                                     authentication_form=RateLimitedAuthenticationForm), name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="landing"), name="logout"),
    path("account/", views.account, name="account"),
    path("account/open/<slug:slug>/", views.open_shop_console, name="open_shop_console"),
    path("healthz", views.healthz, name="healthz"),
    path("console/", platform_console.urls),
    path("billing/", include("billing.urls")),
    path("api/", include("api.urls_public")),
]
