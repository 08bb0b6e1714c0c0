from django.urls import URLPattern, URLResolver, path

from accounts import views

urlpatterns: list[URLPattern | URLResolver] = [
    path("organisation/", views.organisation_detail, name="organisation_detail"),
    path("organisation/new/", views.organisation_create, name="organisation_create"),
    path("organisation/documents/", views.kyc_document_upload, name="kyc_document_upload"),
    path("organisation/documents/<int:pk>/", views.kyc_document_download, name="kyc_document_download"),
    path("organisation/kyc/submit/", views.kyc_submit, name="kyc_submit"),
    path("organisation/invitations/", views.invitation_create, name="invitation_create"),
    path("organisation/invitation/<str:token>/", views.invitation_accept, name="invitation_accept"),
]
