"""Every shell session README.md, docs/ADMIN.md and docs/PROVIDERS.md show is run as written, against a real `serve`
and `photoslot emulate`, and what it prints is compared with the doc (tests/acceptance/docsession.py
says how: placeholders for ids, times and passwords; runs of spaces count as one)."""
from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from tests import logscan
from tests.acceptance.docsession import UUID, Session, parse
from tests.conftest import ROOT, free_port

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="the sessions are bash sessions"),
    pytest.mark.skipif(not all(shutil.which(c) for c in ("bash", "curl", "jq")), reason="the sessions use bash, curl and jq"),
]

DOCS = ["README.md", "docs/ADMIN.md", "docs/PROVIDERS.md"]


@pytest.mark.parametrize("doc", DOCS)
def test_every_session_in_the_doc_runs_as_written(doc, tmp_path, pg_dsn, clean_state):
    blocks = parse(ROOT / doc)
    assert blocks, f"{doc} shows no marked session (<!-- doc-session --> before a fence)"
    folder = tmp_path / "session"
    (folder / "tests").mkdir(parents=True)
    (folder / "tests" / "fixtures").symlink_to(ROOT / "tests" / "fixtures")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOSLOT_")}
    env.update(PATH=str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
               PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
               PHOTOSLOT_DSN=pg_dsn,  # the suite's PostgreSQL stands in for the embedded one
               XDG_STATE_HOME=str(tmp_path / "state"), COLUMNS="200", TERM="dumb")
    ports = {"8080": str(free_port()), "8765": str(free_port())}
    env["PHOTOSLOT_SERVER_PORT"] = ports["8080"]  # the doc's serve listens on the default port
    session = Session(folder, env, ports=ports)
    try:
        for block in blocks:
            session.run_block(block, doc)
    finally:
        session.stop()
    # the servers' own logs go to the suite's log scan, with every password the session used as a secret
    text = (ROOT / doc).read_text(encoding="utf-8")
    used = re.findall(r"--(?:ingest-)?password ([\w-]{12,})", text) + list(session.bound.values())
    for value in used:
        if len(value) >= 12 and not UUID.fullmatch(value):  # a password, not a job id
            logscan.secret(value)
    for log in sorted(folder.glob("*.log")):
        logscan.record(log.read_text(errors="replace"))
    logs = [f"--- {p.name} (end):\n" + "\n".join(p.read_text(errors="replace").splitlines()[-15:])
            for p in sorted(folder.glob("*.log"))]  # a background process's own log says why it stopped
    assert not session.problems, "\n\n".join(session.problems + logs)
