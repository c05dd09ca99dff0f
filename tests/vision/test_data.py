"""Finding the shared data: ``$MNEMOVISION_DATA`` first, else ``shared/data`` beside a parent folder.

Every data test goes through this lookup (the ``shared_data`` fixture), and a lookup that finds
nothing makes those tests skip rather than fail, so its rules are pinned here on folders the tests
make themselves.
"""

from pathlib import Path

import pytest

from mnemovision.vision.data import ENV_VAR, shared_data_path, shared_data_root
from tests.conftest import REPO_ROOT


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """``<tmp>/shared/data/sr/Set5`` and a checkout ``<tmp>/main/src/pkg`` beside it; no env var."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    (tmp_path / "shared" / "data" / "sr" / "Set5").mkdir(parents=True)
    (tmp_path / "main" / "src" / "pkg").mkdir(parents=True)
    return tmp_path


def _outside_any_shared_data(path: Path) -> bool:
    return not any((p / "shared" / "data").is_dir() for p in (path, *path.parents))


def test_shared_data_beside_a_parent_of_start_is_found_from_any_depth(tree):
    data = (tree / "shared" / "data").resolve()
    assert shared_data_root(tree / "main") == data
    assert shared_data_root(tree / "main" / "src" / "pkg") == data
    assert shared_data_root(tree) == data  # start itself holds shared/data
    assert shared_data_path("sr", "Set5", start=tree / "main") == data / "sr" / "Set5"


def test_start_defaults_to_the_current_directory_and_an_explicit_start_wins_over_it(tree, monkeypatch, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    if not _outside_any_shared_data(elsewhere):
        pytest.skip(f"{elsewhere} lies under a folder with shared/data")
    monkeypatch.chdir(tree / "main" / "src")
    assert shared_data_root() == (tree / "shared" / "data").resolve()
    assert shared_data_root(elsewhere) is None
    monkeypatch.chdir(elsewhere)
    assert shared_data_root() is None
    assert shared_data_root(tree / "main") == (tree / "shared" / "data").resolve()


def test_nothing_found_is_none_and_a_bare_data_folder_is_not_taken_for_shared_data(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    if not _outside_any_shared_data(tmp_path):
        pytest.skip(f"{tmp_path} lies under a folder with shared/data")
    (tmp_path / "data" / "sr").mkdir(parents=True)
    (tmp_path / "shared").mkdir()  # shared without data
    assert shared_data_root(tmp_path) is None
    assert shared_data_path("sr", start=tmp_path) is None


def test_missing_parts_are_none_not_a_path_that_does_not_exist(tree):
    assert shared_data_path("sr", "Set14", start=tree / "main") is None
    assert shared_data_path("vos", start=tree / "main") is None
    assert shared_data_path(start=tree / "main") == (tree / "shared" / "data").resolve()


def test_the_environment_variable_wins_and_is_not_second_guessed(tree, monkeypatch, tmp_path_factory):
    own = tmp_path_factory.mktemp("own_data")
    (own / "vos").mkdir()
    monkeypatch.setenv(ENV_VAR, str(own))
    assert shared_data_root(tree / "main") == own
    assert shared_data_path("vos", start=tree / "main") == own / "vos"
    assert shared_data_path("sr", "Set5", start=tree / "main") is None  # only in the searched tree
    # A variable naming a missing folder means no data, not a fall-back to the search.
    monkeypatch.setenv(ENV_VAR, str(own / "missing"))
    assert shared_data_root(tree / "main") is None
    assert shared_data_path("sr", start=tree / "main") is None
    (own / "a_file").write_text("")
    monkeypatch.setenv(ENV_VAR, str(own / "a_file"))
    assert shared_data_root(tree / "main") is None
    monkeypatch.setenv(ENV_VAR, "")  # set but empty: as if unset
    assert shared_data_root(tree / "main") == (tree / "shared" / "data").resolve()


def test_a_checkout_finds_the_team_data_beside_it(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    beside = REPO_ROOT.parent / "shared" / "data"
    if not beside.is_dir():
        pytest.skip(f"no shared data beside this checkout ({beside})")
    assert shared_data_root(REPO_ROOT) == beside.resolve()
    assert shared_data_root(REPO_ROOT / "tests" / "vision") == beside.resolve()
