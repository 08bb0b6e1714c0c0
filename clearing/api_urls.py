from django.urls import URLPattern, URLResolver, path

from clearing import api

urlpatterns: list[URLPattern | URLResolver] = [
    path("account/", api.AccountView.as_view(), name="api-account"),
    path("deliveries/", api.DeliveryListView.as_view(), name="api-deliveries"),
    path("deliveries/<int:pk>/", api.DeliveryDetailView.as_view(), name="api-delivery"),
    path("deliveries/<int:pk>/access/", api.DeliveryAccessView.as_view(), name="api-delivery-access"),
    path("deliveries/<int:pk>/confirm/", api.DeliveryConfirmView.as_view(), name="api-delivery-confirm"),
    path("deliveries/<int:pk>/dispute/", api.DeliveryDisputeView.as_view(), name="api-delivery-dispute"),
]
