"""What a page says, read as a person reads it: the text and the attributes a screen reader speaks
(aria-label, alt, placeholder, the script's messages), without what is not language — code, typed
data marked `translate="no"`, the page's <title> (its own text goes through the catalogue) and
tooltips (`title`, where the pages keep ids).

`english_words(html, allowed)` finds the English words left on a page that should be Russian: a
word of Latin letters that is not a proper name, a format or a protocol (ALLOWED), nor one of the
test's own data (slot names, labels, user names). Tokens with a digit (slot-001, 2K, 24h's
numbers) are ids and values."""
from __future__ import annotations

import re
from html.parser import HTMLParser

SPOKEN_ATTRIBUTES = ("aria-label", "alt", "placeholder", "data-restored", "data-live-text", "data-stopped-text",
                     "data-done", "data-running", "data-text", "data-over", "data-optional", "data-label")
SKIPPED = {"script", "style", "code", "kbd", "samp", "textarea", "title", "template"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
ALLOWED = {"photoslot", "Google", "Gemini", "Turbotext", "DSLR", "Remote", "Pro", "HTTP", "HTTPS", "URL", "API",
           "JPEG", "PNG", "WebP", "HEIC", "HEIF", "UTC", "USD", "EN", "RU", "DEPLOY.md", "https://", "http://", "p50",
           "p95", "English", "JavaScript"}
TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9_'’./:@+\-]*")


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool]] = []  # (tag, skipped here or above)
        self.parts: list[str] = []

    def _skipping(self) -> bool:
        return bool(self.stack) and self.stack[-1][1]

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        skip = self._skipping() or tag in SKIPPED or attrs.get("translate") == "no"
        if not skip:
            self.parts.extend(attrs[name] for name in SPOKEN_ATTRIBUTES if attrs.get(name))
        if tag not in VOID:
            self.stack.append((tag, skip))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID and self.stack and self.stack[-1][0] == tag:
            self.stack.pop()

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        if not self._skipping():
            self.parts.append(data)


def spoken_text(html: str) -> str:
    reader = _Reader()
    reader.feed(html)
    return " ".join(" ".join(reader.parts).split())


def english_words(html: str, allowed: set[str] = frozenset()) -> list[str]:
    """The English words of a page that should be in the page's language (each with its context)."""
    text = re.sub(r"{\w+}", " ", spoken_text(html))  # a script's message's placeholders
    found = []
    for m in TOKEN.finditer(text):
        word = m.group(0).rstrip(".:,;'’-")
        if not word or any(c.isdigit() for c in word) or word in ALLOWED or word in allowed:
            continue
        found.append(f"{word!r} in …{text[max(0, m.start() - 40):m.end() + 40]}…")
    return found
