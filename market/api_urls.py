from django.urls import URLPattern, URLResolver, path

from market import api, api_dayahead, api_dayahead_public, api_futures, api_index, api_open_data

urlpatterns: list[URLPattern | URLResolver] = [
    path("instruments/", api.InstrumentListView.as_view(), name="api-instrument-list"),
    # <str:…> matches anything but "/": symbols contain dots and dashes.
    path("instruments/<str:symbol>/", api.InstrumentDetailView.as_view(), name="api-instrument-detail"),
    path("instruments/<str:symbol>/book/", api.BookView.as_view(), name="api-instrument-book"),
    path("instruments/<str:symbol>/trades/", api.PublicTradesView.as_view(), name="api-instrument-trades"),
    path("orders/", api.OrderListView.as_view(), name="api-order-list"),
    path("orders/batch/", api.OrderBatchView.as_view(), name="api-order-batch"),
    path("orders/cancel-all/", api.OrderCancelAllView.as_view(), name="api-order-cancel-all"),
    path("order-events/", api.OrderEventListView.as_view(), name="api-order-events"),
    path("kill-switch/", api.KillSwitchView.as_view(), name="api-kill-switch"),
    path("orders/<int:order_id>/", api.OrderDetailView.as_view(), name="api-order-detail"),
    path("trades/", api.OwnTradesView.as_view(), name="api-own-trades"),
    path("positions/", api.PositionListView.as_view(), name="api-positions"),
    # The compute price indices (issue 9, item 6; market/api_index.py).
    path("index/", api_index.IndexListView.as_view(), name="api-index-list"),
    path("index/<str:date>/", api_index.IndexDayView.as_view(), name="api-index-day"),
    path("open-data/", api_open_data.OpenDataListView.as_view(), name="api-open-data-list"),
    path("open-data/bulk/", api_open_data.OpenDataBulkListView.as_view(), name="api-open-data-bulk-list"),
    path("open-data/bulk/<str:day>/", api_open_data.OpenDataBulkView.as_view(), name="api-open-data-bulk"),
    path("open-data/<slug:slug>/", api_open_data.OpenDataView.as_view(), name="api-open-data"),
    # Futures: settlement prices and the forward curve (public), the member's margin.
    path("futures/settlement-prices/", api_futures.SettlementPriceListView.as_view(),
         name="api-futures-settlement-prices"),
    path("margin/", api_futures.MarginView.as_view(), name="api-margin"),
    # Day-ahead auction: the member's bids.
    path("dayahead/<str:date>/bids/", api_dayahead.BidListView.as_view(), name="api-dayahead-bids"),
    path("dayahead/<str:date>/bids/<int:bid_id>/", api_dayahead.BidDetailView.as_view(),
         name="api-dayahead-bid-detail"),
    # The day-ahead auction's public side (issue 9): no login, no member identity.
    path("dayahead/<str:date>/", api_dayahead_public.DayAheadDayView.as_view(), name="api-dayahead-day"),
    path("dayahead/<str:date>/results/", api_dayahead_public.DayAheadResultsView.as_view(),
         name="api-dayahead-results"),
    path("dayahead/<str:date>/curves/", api_dayahead_public.DayAheadCurvesView.as_view(),
         name="api-dayahead-curves"),
    path("dayahead/<str:date>/indicative/", api_dayahead_public.DayAheadIndicativeView.as_view(),
         name="api-dayahead-indicative"),
]
