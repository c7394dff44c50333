from django.contrib import admin
from django.urls import include, path

from kdgrade import views

admin.site.site_header = "kdgrade administration"
admin.site.site_title = "kdgrade"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("scoring.api.urls")),
    path("lti/", include("kdgrade.lti.urls")),
    path("lti/", include("grading.urls")),
]
