from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from exchange import views

handler404 = "exchange.views.not_found"
handler500 = "exchange.views.server_failed"

api_v1 = [
    path("", include("accounts.api_urls")),
    path("", include("market.api_urls")),
    path("", include("clearing.api_urls")),
    path("", include("incentives.api_urls")),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz/", views.healthz, name="healthz"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("", include("accounts.urls")),
    path("", include("market.urls")),
    path("", include("clearing.urls")),
    path("", include("incentives.urls")),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file: the CSP allows no inline script without a nonce.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
]

admin.site.site_header = "Rechenbörse – Betrieb"
admin.site.site_title = "Rechenbörse"
admin.site.index_title = "Operator"
