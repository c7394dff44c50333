"""Forms of the training pages (parsing only)."""

from __future__ import annotations

from django import forms

from training.runs import PRESETS


class UploadForm(forms.Form):
    answers = forms.FileField(
        label="Scored answers (CSV or XLSX)",
        help_text="Columns item_id, response_id, response, score; optional question, reference_answer, score2 "
                  "(a second rater) and any group columns (e.g. school). UTF-8.")
    rubric = forms.FileField(
        label="Rubric (optional)", required=False,
        help_text="kdgrade rubric JSON, a CSV item_id,score,label,descriptor, or Canvas's rubric CSV export. "
                  "Needed for items kdgrade does not know yet.")


class StartRunForm(forms.Form):
    preset = forms.ChoiceField(choices=[(p, {"default": "Full recipe (about 10 min per 1,500 answers)",
                                             "tiny": "Quick try (tiny teacher, seconds; not for real use)"}[p])
                                        for p in PRESETS], initial="default", label="Recipe")
    include_confirmed = forms.BooleanField(required=False, initial=True,
                                           label="Include scores teachers confirmed or corrected in the review queue")
    include_unscored = forms.BooleanField(required=False, initial=True,
                                          label="Include unscored live answers (the teacher model labels them)")
    activate_passing = forms.BooleanField(required=False, initial=False,
                                          label="Activate each new version that passes every quality gate")


class ActivateForm(forms.Form):
    override = forms.BooleanField(required=False, label="Activate although quality gates failed (recorded)")
    note = forms.CharField(required=False, max_length=500, label="Why (recorded with the activation)")
