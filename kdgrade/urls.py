from django.contrib import admin
from django.urls import include, path

from kdgrade import login_throttle, views

admin.site.site_header = "kdgrade administration"
admin.site.site_title = "kdgrade"
admin.site.login = login_throttle.throttled(admin.site.login)

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("livez", views.livez, name="livez"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("scoring.api.urls")),
    path("lti/", include("kdgrade.lti.urls")),
    path("lti/", include("grading.urls")),
]
