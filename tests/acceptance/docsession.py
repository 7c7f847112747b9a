"""Run the shell sessions a doc shows, and compare what they print with what the doc says.

A session is a fenced block right after a marker line:

    <!-- doc-session [tty] [cwd=/tmp/demo] [vary="896903 1.025712"] -->
    ```console
    $ photoslot slot list --json | jq length
    15
    ```

- `$ ` starts a command; a line ending in `\\` continues it; a here-document (`<<'EOF'` … `EOF`)
  belongs to it. Every other line is output the command must print (stdout and stderr together).
- A command ending in ` &` runs in the background, as in a shell; the lines after it must appear in
  its output, in that order, among others (a server's log lines), within a minute. With `tty` it
  gets a terminal, as it has when a reader types it.
- `NAME=value` and `NAME=$(…)` set a variable for the commands after it.
- Output may differ from the doc only where the doc cannot know: `…` stands for any text (a line
  of only `…` for any number of lines); UUIDs, dates and times match any; the literals listed in
  `vary` (and UUIDs) match any value the first time, and must then be that same value wherever they
  appear again — in commands too (a job id, a password printed once and used later); `cwd` is the
  folder the doc's session ran in. Runs of spaces and of table rules count as one, so a table whose
  columns are wider or narrower still matches.
- Every file of a doc runs in one folder, one after the other; the ports 8080 and 8765 are
  replaced with free ones.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

MARKER = re.compile(r"^<!-- doc-session(?P<opts>[^>]*)-->\s*$")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:\d\d)?")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
RULES = re.compile(r"([─━═┄ ])\1+")
ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.S)
VALUE = r"[^\s\"',]+"  # a password, a size, a duration: one word
HEREDOC = re.compile(r"<<-?\s*'?\"?(\w+)'?\"?")


@dataclass
class Command:
    text: str
    expected: list[str] = field(default_factory=list)
    line: int = 0  # in the doc

    @property
    def background(self) -> bool:
        return self.text.rstrip().endswith("&") and not self.text.rstrip().endswith("&&")


@dataclass
class Block:
    commands: list[Command]
    tty: bool = False
    cwd: str | None = None
    vary: tuple[str, ...] = ()
    line: int = 0


def parse(doc: Path) -> list[Block]:
    lines = doc.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = MARKER.match(lines[i])
        if not m:
            i += 1
            continue
        opts = shlex.split(m["opts"])
        fence = i + 1
        assert lines[fence].startswith("```"), f"{doc.name}:{fence + 1}: a doc-session marker must precede a fence"
        end = next(j for j in range(fence + 1, len(lines)) if lines[j].startswith("```"))
        block = Block(commands=[], tty="tty" in opts, line=i + 1,
                      cwd=next((o.split("=", 1)[1] for o in opts if o.startswith("cwd=")), None),
                      vary=tuple(w for o in opts if o.startswith("vary=") for w in o.split("=", 1)[1].split()))
        body = lines[fence + 1:end]
        k = 0
        while k < len(body):
            text = body[k]
            if text.startswith("$ "):
                cmd, start = text[2:], k
                while cmd.endswith("\\") and k + 1 < len(body):
                    k += 1
                    cmd = cmd[:-1].rstrip() + " " + body[k].strip()
                here = HEREDOC.search(cmd)
                if here:
                    words = []
                    while k + 1 < len(body):
                        k += 1
                        words.append(body[k])
                        if body[k].strip() == here[1]:
                            break
                    cmd = cmd + "\n" + "\n".join(words)
                block.commands.append(Command(cmd, line=fence + 2 + start))
            else:
                assert block.commands, f"{doc.name}:{fence + 2 + k}: output before the first command"
                block.commands[-1].expected.append(text)
            k += 1
        blocks.append(block)
        i = end + 1
    return blocks


def normalize(line: str) -> str:
    return RULES.sub(r"\1", ANSI.sub("", line).replace("\r", "").rstrip())


class Mismatch(AssertionError):
    pass


class Session:
    """One doc's sessions, run in `folder` with `env`; `ports` maps the doc's ports to real ones."""

    def __init__(self, folder: Path, env: dict, ports: dict[str, str]) -> None:
        self.folder, self.env, self.ports = folder, dict(env), ports
        self.bound: dict[str, str] = {}  # a doc literal → the value the run printed for it
        self.background: list[tuple[subprocess.Popen, list[str], threading.Thread]] = []
        self.cwd_literal: str | None = None
        self.problems: list[str] = []

    # ---------------------------------------------------------------- the doc's text → this run's

    def substitute(self, text: str, *, bound: bool = True) -> str:
        for doc_port, port in self.ports.items():
            text = re.sub(rf"\b{doc_port}\b", port, text)
        if self.cwd_literal:
            text = text.replace(self.cwd_literal, str(self.folder))
        for literal in sorted(self.bound, key=len, reverse=True) if bound else ():
            text = text.replace(literal, self.bound[literal])
        return text

    def pattern(self, expected: list[str], vary: tuple[str, ...]) -> tuple[re.Pattern, dict[str, str]]:
        """One regex for these lines; its named groups capture the values of unbound literals."""
        groups: dict[str, str] = {}  # group name → literal
        named: dict[str, str] = {}  # literal → group name
        known = [re.escape(v) for v in sorted(self.bound, key=len, reverse=True)]
        variable = [re.escape(v) for v in sorted(vary, key=len, reverse=True)]
        # a literal bound earlier must print its value again: it is matched before the wildcards
        token = re.compile("|".join(known + ["…", UUID.pattern, TIMESTAMP.pattern] + variable))
        out = []
        for raw in expected:
            line = normalize(self.substitute(raw, bound=False))
            if line == "…":
                out.append(r"(?:[^\n]*\n)*?")
                continue
            parts, pos = [], 0
            for m in token.finditer(line):
                parts.append(re.escape(line[pos:m.start()]))
                found = m.group(0)
                if found in self.bound:
                    parts.append(re.escape(self.bound[found]))
                elif found == "…":
                    parts.append(r"[^\n]*?")
                elif TIMESTAMP.fullmatch(found):
                    parts.append(TIMESTAMP.pattern)
                elif found in named:
                    parts.append(f"(?P={named[found]})")
                else:
                    name = f"v{len(named)}"
                    named[found], groups[name] = name, found
                    value = UUID.pattern if UUID.fullmatch(found) else VALUE
                    parts.append(f"(?P<{name}>{value})")
                pos = m.end()
            parts.append(re.escape(line[pos:]))
            out.append("".join(parts) + r"\n")
        return re.compile("".join(out)), groups

    # ---------------------------------------------------------------- running

    def run_block(self, block: Block, doc: str) -> None:
        if block.cwd:
            self.cwd_literal = block.cwd
        for cmd in block.commands:
            where = f"{doc}:{cmd.line}: $ {cmd.text.splitlines()[0]}"
            try:
                if cmd.background:
                    self._start(cmd, block, where)
                else:
                    self._run(cmd, block, where)
            except Mismatch as exc:  # every difference in one run, not one per run
                self.problems.append(str(exc))

    def _shell(self, text: str) -> list[str]:
        return ["bash", "-c", "set -o pipefail\n" + text]

    def _run(self, cmd: Command, block: Block, where: str) -> None:
        text = self.substitute(cmd.text)
        assign = ASSIGNMENT.match(text)
        if assign and " " not in assign[2].split("$(")[0]:  # NAME=value / NAME=$(…), no command after it
            text = f'{assign[1]}={assign[2]}\nprintf %s "${assign[1]}"'
        r = subprocess.run(self._shell(text), cwd=self.folder, env=self.env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        output = r.stdout.decode("utf-8", "replace")
        if assign:
            self.env[assign[1]] = output
            output = ""
        raw = [ANSI.sub("", x).replace("\r", "").rstrip() for x in output.splitlines()]
        while raw and not raw[-1]:
            raw.pop()
        lines = [normalize(x) for x in raw]
        expected = list(cmd.expected)
        while expected and not expected[-1].strip():
            expected.pop()
        regex, groups = self.pattern(expected, block.vary)
        m = regex.fullmatch("".join(x + "\n" for x in lines))
        if m is None:
            raise Mismatch(f"{where}\n--- the doc says:\n" + "\n".join(expected)
                           + f"\n--- it printed (exit {r.returncode}):\n" + "\n".join(raw))
        self._bind(m, groups)

    def _bind(self, m: re.Match, groups: dict[str, str]) -> None:
        for name, literal in groups.items():
            self.bound[literal] = m.group(name)

    def _start(self, cmd: Command, block: Block, where: str) -> None:
        text = self.substitute(cmd.text).rstrip()[:-1].rstrip()
        lines: list[str] = []
        if block.tty:
            import pty

            master, slave = pty.openpty()
            proc = subprocess.Popen(self._shell("exec " + text), cwd=self.folder, env=self.env,
                                    stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, start_new_session=True)
            os.close(slave)


            def take() -> bytes:
                return os.read(master, 4096)
        else:
            proc = subprocess.Popen(self._shell("exec " + text), cwd=self.folder, env=self.env,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    start_new_session=True)

            def take() -> bytes:
                return proc.stdout.read1(4096)

        def read() -> None:
            pending = b""
            try:
                while chunk := take():
                    pending += chunk
                    *done, pending = pending.split(b"\n")
                    lines.extend(normalize(x.decode("utf-8", "replace")) for x in done)
            except OSError:  # the terminal's other side closed: the process ended
                pass
            if pending:
                lines.append(normalize(pending.decode("utf-8", "replace")))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        self.background.append((proc, lines, reader))
        self._expect_in_order(cmd, block, where, proc, lines)

    def _expect_in_order(self, cmd: Command, block: Block, where: str, proc, lines: list[str]) -> None:
        wanted = [x for x in cmd.expected if x.strip()]
        end = time.monotonic() + 60
        while True:
            at, missing = 0, None
            for line in wanted:
                regex, groups = self.pattern([line], block.vary)
                for k in range(at, len(lines)):
                    m = regex.fullmatch(lines[k] + "\n")
                    if m:
                        self._bind(m, groups)
                        at = k + 1
                        break
                else:
                    missing = line
                    break
            if missing is None:
                return
            if time.monotonic() > end or proc.poll() is not None and time.monotonic() > end - 55:
                raise Mismatch(f"{where}\n--- the doc says it prints (in this order):\n" + "\n".join(wanted)
                               + f"\n--- no line like: {missing}\n--- it printed:\n" + "\n".join(lines))
            time.sleep(0.1)

    def stop(self) -> None:
        for proc, _, reader in reversed(self.background):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            reader.join(5)
