"""Switching the active version while the HTTP API serves requests: no request lost or failed, and every
response scored entirely by the one version it names."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import onnxruntime as ort
import pytest
import requests

from distillation.features import Featurizer
from scoring import versions
from scoring.api.accounts import integration_token
from scoring.services import reference_text
from tests.scoring_support import ANSWERS

pytestmark = pytest.mark.django_db(transaction=True)


def _expected(version_dir, item) -> np.ndarray:
    state = json.loads((version_dir / "featurizer.json").read_text())
    feeds = Featurizer.from_state(state).transform(ANSWERS, item.question, reference_text(item))
    return ort.InferenceSession(str(version_dir / "model.onnx")).run(["probabilities"], feeds)[0]


def test_flipping_the_active_version_under_http_load(live_server, demo_versions, model_dirs):
    item, v1, v2 = demo_versions
    versions.activate_version(v1)
    expected = {v1.pk: _expected(model_dirs["v1"], item), v2.pk: _expected(model_dirs["v2"], item)}
    assert np.abs(expected[v1.pk] - expected[v2.pk]).max() > 1e-3
    token = integration_token("loader")
    url = f"{live_server.url}/api/v1/items/heat-spoon/score-batch/"
    stop = threading.Event()
    sent: list[int] = []
    problems: list[str] = []
    seen: list[int] = []

    def client(n: int) -> None:
        with requests.Session() as http:
            http.headers["Authorization"] = f"Token {token}"
            while not stop.is_set():
                store = len(sent) % 2 == 0
                sent.append(n)
                try:
                    r = http.post(url, json={"responses": [{"response": a} for a in ANSWERS], "store": store},
                                  timeout=30)
                except requests.RequestException as exc:
                    problems.append(f"lost: {exc!r}")
                    continue
                if r.status_code not in (200, 201):
                    problems.append(f"{r.status_code}: {r.text[:200]}")
                    continue
                body = r.json()
                vid = body["model_version"]["id"]
                got = np.array([[res["probabilities"][k] for k in ("0", "1", "2")] for res in body["results"]])
                if got.shape != expected[vid].shape or np.abs(got - expected[vid]).max() > 1e-6:
                    problems.append(f"response mixes versions or differs from version {vid}")
                seen.append(vid)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    try:
        for i in range(10):
            time.sleep(0.15)
            versions.activate_version(v2 if i % 2 == 0 else v1)
        time.sleep(0.15)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not problems, problems[:5]
    assert len(seen) == len(sent) > 10
    assert set(seen) == {v1.pk, v2.pk}
