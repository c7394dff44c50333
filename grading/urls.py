from django.urls import path

from grading import views

app_name = "grading"

# Under /lti/ (the addresses LMS placements and earlier launches already use).
urlpatterns = [
    path("a/<int:assignment_id>/", views.answer, name="answer"),
    path("a/<int:assignment_id>/review/", views.queue, name="queue"),
    path("a/<int:assignment_id>/answers/", views.table, name="table"),
    path("a/<int:assignment_id>/groups/", views.groups, name="groups"),
    path("a/<int:assignment_id>/overview/", views.overview, name="overview"),
    path("a/<int:assignment_id>/export.csv", views.export, name="export"),
    path("a/<int:assignment_id>/accept/", views.accept, name="accept"),
    path("a/<int:assignment_id>/score/", views.set_score, name="set_score"),
    path("a/<int:assignment_id>/comment/", views.comment, name="comment"),
    path("a/<int:assignment_id>/release/", views.release, name="release"),
    path("a/<int:assignment_id>/accept-many/", views.accept_many, name="accept_many"),
    path("a/<int:assignment_id>/release-all/", views.release_all, name="release_all"),
    path("a/<int:assignment_id>/retry/", views.retry, name="retry"),
    path("a/<int:assignment_id>/counting-attempt/", views.choose_attempt, name="choose_attempt"),
    path("a/<int:assignment_id>/settings/", views.save_settings, name="settings"),
    path("a/<int:assignment_id>/roster/", views.sync_roster, name="roster"),
    path("submission/<int:submission_id>/", views.submission, name="submission"),
]
