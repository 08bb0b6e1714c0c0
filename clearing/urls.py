"""Member pages of the clearing house (included at the site root)."""

from django.urls import URLPattern, URLResolver, path, re_path

from clearing import views

_DAY = r"(?P<day>\d{4}-\d{2}-\d{2})"

urlpatterns: list[URLPattern | URLResolver] = [
    path("statements/", views.statement, name="statements"),
    re_path(rf"^statements/{_DAY}/$", views.statement, name="statement_day"),
    re_path(rf"^statements/{_DAY}\.csv$", views.statement_csv, name="statement_csv"),
    path("invoices/", views.invoice_list, name="invoices"),
    path("invoices.csv", views.invoice_list_csv, name="invoices_csv"),
    path("invoices/<str:number>/", views.invoice_detail, name="invoice_detail"),
    path("deliveries/", views.delivery_list, name="deliveries"),
    path("deliveries/<int:pk>/", views.delivery_detail, name="delivery_detail"),
    path("withdrawals/", views.withdrawals, name="withdrawals"),
]
