"""Checking target URLs: Apprise decides, without loading its plugins into the checker.

Apprise loads all of its plugins (about 34 MB with the import, paho among them) to check a
URL, so a process that has not delivered yet asks a child process; the answers are the
ones Apprise gives in-process (test_config's "bad target" and test_cli's `watcher check`
show the user-facing error).
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.snippets import run_snippet
from watcher import notify

UNKNOWN = "Apprise cannot use this {}:// URL (unknown service or missing parts)"
EXPECTED: dict[str, str | None] = {
    "console://": None,
    "json://127.0.0.1:9/hook": None,
    "mailtos://user:pass@smtp.example.org": None,
    "nope://x": UNKNOWN.format("nope"),
    "tgram://": UNKNOWN.format("tgram"),  # a known service, its parts missing
    "mailto://": UNKNOWN.format("mailto"),
    "no scheme": "'no scheme' is not a URL",
}

CHECK_IN_A_FRESH_PROCESS = """\
import json
import sys

from watcher.notify import check_target_urls

answers = check_target_urls(json.loads(sys.argv[1]))
print(json.dumps({"answers": answers, "apprise_loaded": "apprise" in sys.modules}))
"""


def test_a_process_checks_target_urls_without_loading_apprise_and_gets_apprises_answers() -> None:
    done = run_snippet(CHECK_IN_A_FRESH_PROCESS, json.dumps(list(EXPECTED)))
    result = json.loads(done.stdout)
    assert result == {"answers": EXPECTED, "apprise_loaded": False}


def test_a_process_that_has_loaded_apprise_checks_in_process_with_the_same_answers() -> None:
    checked = {url: notify.check_target_url(url) for url in EXPECTED}
    assert notify.send("nope://x", notify.Message("t", "b")) == notify.SendOutcome(
        False, "invalid notification URL"
    )  # a delivery attempt loads Apprise here

    urls = [f"{url}?fresh=1" if "://" in url else url for url in EXPECTED]
    fresh = notify.check_target_urls(urls)

    assert checked == EXPECTED
    assert list(fresh.values()) == list(EXPECTED.values())


# As CHECK_IN_A_FRESH_PROCESS, with no Python to start the child process with.
CHECK_WITHOUT_A_CHILD = """\
import json
import logging
import sys

from watcher.notify import check_target_urls

class Keep(logging.Handler):
    def emit(self, record):
        records.append(record)

records = []
logging.getLogger("watcher.notify").addHandler(Keep())
sys.executable = sys.argv[2]
answers = check_target_urls(json.loads(sys.argv[1]))
logged = [record.getMessage() for record in records]
print(json.dumps({"answers": answers, "logged": logged}))
"""


def test_when_the_child_process_cannot_run_the_urls_are_checked_here(tmp_path: Path) -> None:
    urls = ["nope://secret@y", "json://127.0.0.1:9/other"]
    done = run_snippet(CHECK_WITHOUT_A_CHILD, json.dumps(urls), str(tmp_path / "none"))
    result = json.loads(done.stdout)
    assert result["answers"] == {urls[0]: UNKNOWN.format("nope"), urls[1]: None}
    (logged,) = result["logged"]
    assert "child process failed (FileNotFoundError); checking them here" in logged
    assert "secret" not in logged  # URLs carry secrets
