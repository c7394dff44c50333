from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from scoring.api import views

app_name = "api"

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("items/", views.ItemListView.as_view(), name="items"),
    path("items/<str:item_id>/", views.ItemDetailView.as_view(), name="item"),
    path("items/<str:item_id>/model-versions/", views.ModelVersionListView.as_view(), name="model-versions"),
    path("items/<str:item_id>/score/", views.ScoreView.as_view(), name="score"),
    path("items/<str:item_id>/score-batch/", views.BatchScoreView.as_view(), name="score-batch"),
    path("submissions/<int:submission_id>/", views.SubmissionDetailView.as_view(), name="submission"),
    re_path(r"^[\s\S]*$", views.NotFoundView.as_view(), name="not-found"),  # any path, newlines too
]
