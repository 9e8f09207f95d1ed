"""Progress: status transitions, persistence, and a corrupt file moved aside (never lost)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from labs.progress import CorruptProgressWarning, Progress


def ticking_clock() -> Callable[[], datetime]:
    """A clock that moves one minute per call, so timestamps tell calls apart."""
    now = [datetime(2025, 1, 1, 12, 0, tzinfo=UTC)]

    def clock() -> datetime:
        now[0] += timedelta(minutes=1)
        return now[0]

    return clock


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "ws" / ".progress.json"


def test_a_fresh_file_knows_nothing(path: Path) -> None:
    progress = Progress(path)
    assert progress.status("01") == "not started"
    assert progress.current_lab() is None
    assert progress.hints_shown("01") == 0
    assert not path.exists()  # reading never creates the file


def test_start_check_fail_pass_fail_stays_passed(path: Path) -> None:
    progress = Progress(path, clock=ticking_clock())
    progress.mark_started("01", "local", "netlab")
    assert progress.status("01") == "in progress"
    assert progress.current_lab() == "01"

    progress.record_check("01", False, {"passed": 1, "total": 4})
    assert progress.status("01") == "in progress"

    progress.record_check("01", True, {"passed": 4, "total": 4})
    assert progress.status("01") == "passed"
    passed_at = progress.as_dict()["labs"]["01"]["passed_at"]
    assert passed_at is not None

    progress.record_check("01", False, {"passed": 3, "total": 4})
    entry = progress.as_dict()["labs"]["01"]
    assert progress.status("01") == "passed"  # once passed, it stays passed
    assert entry["attempts"] == 3
    assert entry["passed_at"] == passed_at  # the first pass is remembered
    assert entry["last_result"]["passed"] is False
    assert entry["last_result"]["summary"] == {"passed": 3, "total": 4}


def test_restarting_a_passed_lab_keeps_it_passed(path: Path) -> None:
    progress = Progress(path)
    progress.record_check("02", True, {})
    progress.mark_started("02", "kind", "other")
    assert progress.status("02") == "passed"
    assert progress.status("01") == "not started"


def test_current_lab_and_its_engine_are_the_last_started(path: Path) -> None:
    progress = Progress(path)
    progress.mark_started("01", "local", "netlab")
    progress.mark_started("02", "kind", "kind-netlab")
    data = progress.as_dict()
    assert (progress.current_lab(), data["engine"], data["cluster"]) == (
        "02", "kind", "kind-netlab")
    assert data["labs"]["01"]["engine"] == "local"


def test_hints_count_up_and_persist(path: Path) -> None:
    progress = Progress(path)
    assert [progress.bump_hints("01"), progress.bump_hints("01")] == [1, 2]
    assert Progress(path).hints_shown("01") == 2
    assert Progress(path).status("01") == "in progress"


def test_everything_persists_in_one_json_file(path: Path) -> None:
    Progress(path).mark_started("01", "local", "netlab")
    Progress(path).record_check("01", True, {"points": 5})
    on_disk = json.loads(path.read_text())
    assert on_disk["current"] == "01"
    assert on_disk["labs"]["01"]["status"] == "passed"
    assert on_disk == Progress(path).as_dict()
    assert [p.name for p in path.parent.iterdir()] == [".progress.json"]  # no temp files left


def test_a_summary_that_is_not_json_is_refused_before_writing(path: Path) -> None:
    progress = Progress(path)
    progress.mark_started("01", "local", "netlab")
    before = path.read_text()
    with pytest.raises(ValueError, match="not JSON data"):
        progress.record_check("01", True, {"when": datetime.now(UTC)})
    assert path.read_text() == before


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[1, 2]", b'{"labs": {"01": {"status": "finished"}}}', b"\xff\xfe\x00"],
)
def test_a_corrupt_file_is_moved_aside_with_a_warning(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    progress = Progress(path, clock=ticking_clock())
    with pytest.warns(CorruptProgressWarning, match="moved to .*corrupt-20250101T1201"):
        assert progress.status("01") == "not started"
    assert progress.moved_aside is not None
    assert progress.moved_aside.name == ".progress.json.corrupt-20250101T120100Z"
    assert progress.moved_aside.read_bytes() == content  # kept, byte for byte
    progress.mark_started("01", "local", "netlab")  # and work goes on
    assert Progress(path).status("01") == "in progress"


def test_two_corrupt_files_in_the_same_second_both_survive(path: Path) -> None:
    path.parent.mkdir(parents=True)
    fixed = datetime(2025, 1, 1, tzinfo=UTC)
    for content in ("first {", "second {"):
        path.write_text(content)
        with pytest.warns(CorruptProgressWarning):
            Progress(path, clock=lambda: fixed).status("01")
    kept = sorted(p.read_text() for p in path.parent.glob(".progress.json.corrupt-*"))
    assert kept == ["first {", "second {"]


def test_unknown_keys_written_by_a_newer_version_are_kept(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"version": 1, "theme": "dark",
                                "labs": {"01": {"status": "passed", "badge": "gold"}}}))
    Progress(path).bump_hints("01")
    on_disk = json.loads(path.read_text())
    assert on_disk["theme"] == "dark" and on_disk["labs"]["01"]["badge"] == "gold"
    assert on_disk["labs"]["01"]["status"] == "passed"
