from django.urls import URLPattern, URLResolver, path

from incentives import api

urlpatterns: list[URLPattern | URLResolver] = [
    path("incentives/financing/", api.FinancingView.as_view(), name="api-incentives-financing"),
    path("incentives/programmes/", api.ProgrammeListView.as_view(), name="api-incentives-programmes"),
    path("incentives/programmes/<int:pk>/eligibility/", api.EligibilityView.as_view(),
         name="api-incentives-eligibility"),
    path("incentives/applications/", api.ApplicationListView.as_view(), name="api-incentives-applications"),
    path("incentives/credits/", api.CreditsView.as_view(), name="api-incentives-credits"),
]
