"""kdgrade distillation: data, teacher, soft labels, student, KD loss, ONNX export, reports.

Importable without Django.  Serving needs only :mod:`distillation.features` and
:mod:`distillation.artifact` (numpy + stdlib, plus onnx/onnxruntime for verification);
every other module here is training code (torch, transformers, scikit-learn).
"""
