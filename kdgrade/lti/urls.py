from django.urls import path

from kdgrade.lti import views

app_name = "lti"

urlpatterns = [
    path("login/", views.login, name="login"),
    path("launch/", views.launch, name="launch"),
    path("jwks/", views.jwks, name="jwks"),
    path("jwks/<str:jwks_id>/", views.platform_jwks, name="platform_jwks"),
    path("canvas.json", views.canvas_config, name="canvas_config"),
    path("register/", views.register, name="register"),
    path("deep-link/", views.deep_link, name="deep_link"),
]
