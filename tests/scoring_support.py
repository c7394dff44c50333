"""Fixtures for the scoring and API tests: REAL model versions built by the distillation pipeline.

`distillation.pipeline.distill_csv` (tiny teacher configuration) distils the demo item twice (seeds 0
and 1) once per test session, in a child process so that torch never enters the test process.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO_CSV = ROOT / "scoring" / "demo" / "heat_spoon.csv"

_BUILD = """
import sys, warnings
warnings.filterwarnings("ignore")
from pathlib import Path
from distillation.pipeline import distill_csv
out = Path(sys.argv[1])
for seed in (0, 1):
    distill_csv(sys.argv[2], out / f"seed{seed}", seed=seed)
"""

ANSWERS = [
    "Metal is a better conductor of heat than wood, so it takes heat away from my hand faster.",
    "Both spoons are at room temperature but metal conducts heat away from the skin quickly.",
    "The metal spoon is colder than the wooden spoon.",
    "Wood is an insulator.",
    "Metal conducts heat.",
    "because metal is cold",
    "The wooden spoon keeps heat in and the metal one lets it go into the table and my hand.",
    "I think the metal is colder because it was in the fridge.",
]


def build_model_dirs(root: Path) -> dict[str, Path]:
    done = subprocess.run(
        [sys.executable, "-c", _BUILD, str(root), str(DEMO_CSV)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, f"distill_csv failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return {"v1": root / "seed0" / "heat-spoon", "v2": root / "seed1" / "heat-spoon"}


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two real model versions of the demo item (seeds 0 and 1), built once per session."""
    return build_model_dirs(tmp_path_factory.mktemp("distilled"))


@pytest.fixture
def models_dir(settings, tmp_path: Path) -> Path:
    settings.MODELS_DIR = tmp_path / "models"
    return settings.MODELS_DIR


@pytest.fixture
def demo_versions(model_dirs: dict[str, Path], models_dir: Path):
    """The demo item with both versions registered (READY, none active)."""
    from scoring.demo_data import load_demo
    from scoring.versions import register_version

    item = load_demo()
    return item, register_version(item, model_dirs["v1"]), register_version(item, model_dirs["v2"])
