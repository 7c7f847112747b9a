"""The doc-session comparison (tests/acceptance/docsession.py) is strict where a doc can be wrong and
loose only where it cannot know: ids, times, the listed literals, table widths."""
from __future__ import annotations

from pathlib import Path

from tests.acceptance.docsession import Session, normalize, parse


def matches(session: Session, expected: list[str], printed: list[str], vary=()) -> bool:
    regex, groups = session.pattern(expected, vary)
    m = regex.fullmatch("".join(normalize(x) + "\n" for x in printed))
    if m:
        session._bind(m, groups)
    return m is not None


def test_ids_times_and_listed_literals_match_any_value_then_stay_bound(tmp_path):
    s = Session(tmp_path, {}, ports={"8080": "41234"})
    doc = ["job 93c127ba-0973-4ffb-a74b-415409a4288e at 2026-11-24 11:48:08 took 1.02 s on :8080"]
    run = ["job 0a1b2c3d-0973-4ffb-a74b-415409a4288e at 2026-11-29 16:13:47 took 2.34 s on :41234"]
    assert matches(s, doc, run, vary=("1.02",))
    assert s.substitute("photoslot job 93c127ba-0973-4ffb-a74b-415409a4288e") == \
        "photoslot job 0a1b2c3d-0973-4ffb-a74b-415409a4288e"
    # once bound, the same literal must print the same value
    assert not matches(s, ["again 93c127ba-0973-4ffb-a74b-415409a4288e"], ["again 11111111-0973-4ffb-a74b-415409a4288e"])


def test_a_changed_word_or_a_missing_line_fails_but_table_widths_do_not(tmp_path):
    s = Session(tmp_path, {}, ports={})
    assert not matches(s, ["slot-001: 200 in … s"], ["slot-001: 504 in 5.0 s"])
    assert not matches(s, ["one", "two"], ["one"])
    assert matches(s, ["│ name   │ x │", "…"], ["│ name │ x │", "more", "lines"])
    assert matches(s, ["┌──────┬─┐"], ["┌──┬────┐"])


def test_a_marker_makes_a_session_of_the_fence_after_it(tmp_path):
    doc = tmp_path / "d.md"
    doc.write_text('text\n<!-- doc-session tty vary="abc" -->\n```console\n$ echo a \\\n    b\na b\n'
                   "$ cat > f <<'EOF'\nx\nEOF\n$ sleep 9 &\n```\n", encoding="utf-8")
    [block] = parse(Path(doc))
    assert block.tty and block.vary == ("abc",)
    assert [c.text for c in block.commands] == ["echo a b", "cat > f <<'EOF'\nx\nEOF", "sleep 9 &"]
    assert block.commands[0].expected == ["a b"] and block.commands[2].background
