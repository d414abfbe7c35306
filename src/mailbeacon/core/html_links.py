"""Where the links are, and texts with holes where the tracked URLs go.

scan_html() and scan_text() find hrefs in HTML, bare URLs in plain text, and the
spots in an HTML body where mailbeacon inserts its own markup; splice() turns a
text and its edits into a Template whose slots are filled per recipient.

Regular expressions rather than an HTML parser, because we need exact character
positions (everything we do not rewrite must come back unchanged) and mail HTML
is too often broken for a strict parser to agree with what mail clients render.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import AnyStr, Generic, NamedTuple

# Ordinary comments and script/style bodies are skipped. Conditional comments
# (<!--[if mso]> ... <![endif]-->) are not: Outlook renders what is inside, so only
# the opener is consumed and the scan goes on through their contents.
_TAGS = re.compile(
    r"<!--\[if[^>]*>"
    r"|<!--(?:>|->|.*?-->)"
    r"|<(script|style)\b.*?</\1\s*>"
    r"|<(a|area|v:roundrect|body)(?=[\s/>])((?:[^>\"']|\"[^\"]*\"|'[^']*')*)>",
    re.IGNORECASE | re.DOTALL,
)
_ATTRIBUTE = re.compile(r"""([^\s"'>/=]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s"'>]+))?""")
_HEAD_END = re.compile(r"</head\s*>", re.IGNORECASE)
_HTML_START = re.compile(r"<html\b(?:[^>\"']|\"[^\"]*\"|'[^']*')*>", re.IGNORECASE)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
_HTML_END = re.compile(r"</html\s*>", re.IGNORECASE)

_TAB_OR_NEWLINE = re.compile(r"[\t\n\r]")
_TEXT_URL = re.compile(r"https?://[^\s<>\"]+", re.IGNORECASE)
_TRAILING_PUNCTUATION = frozenset(".,;:!?'\"”’»›")
_OPENER_OF = {")": "(", "]": "[", "}": "{"}


@dataclass(frozen=True, slots=True)
class Link:
    """A trackable URL and the span of text that spells it.

    In HTML the span is the whole attribute value, quotes included, and ``url``
    is that value with entities decoded; in plain text the span is the URL itself.
    """

    start: int
    end: int
    url: str


@dataclass(frozen=True, slots=True)
class HtmlScan:
    links: tuple[Link, ...]
    top: int  # where the pixel goes: just inside <body>, else as near the top as is valid
    bottom: int  # where a downloads list goes: before </body>, else at the end


def is_trackable(url: str) -> bool:
    """Only web links are tracked; mailto:, tel:, #anchors and the rest are left alone."""
    lowered = url[:8].lower()
    if lowered.startswith("https://"):
        return len(url) > 8
    return lowered.startswith("http://") and len(url) > 7


def scan_html(text: str) -> HtmlScan:
    links: list[Link] = []
    body_end: int | None = None
    for tag in _TAGS.finditer(text):
        name = tag.group(2)
        if name is None:
            continue
        if name.lower() == "body":
            if body_end is None:
                body_end = tag.end()
            continue
        link = _href(tag.group(3), tag.start(3))
        if link is not None:
            links.append(link)
    top = body_end if body_end is not None else _top_without_body(text)
    return HtmlScan(tuple(links), top, _bottom(text))


def _href(attributes: str, offset: int) -> Link | None:
    for attribute in _ATTRIBUTE.finditer(attributes):
        if attribute.group(1).lower() != "href" or attribute.group(2) is None:
            continue
        raw = attribute.group(2)
        if raw[:1] in "\"'":
            raw = raw[1:-1]
        # Browsers drop tabs and newlines anywhere in a URL (WHATWG URL parsing), so we do too.
        url = _TAB_OR_NEWLINE.sub("", html.unescape(raw)).strip()
        if not is_trackable(url):
            return None
        return Link(offset + attribute.start(2), offset + attribute.end(2), url)
    return None


def _top_without_body(text: str) -> int:
    # Before <html> or a doctype an <img> would push the page into quirks mode or
    # be dropped, so the pixel goes after </head>, else after <html>, else first.
    for pattern in (_HEAD_END, _HTML_START):
        found = pattern.search(text)
        if found:
            return found.end()
    return 0


def _bottom(text: str) -> int:
    for pattern in (_BODY_END, _HTML_END):
        ends = list(pattern.finditer(text))
        if ends:
            return ends[-1].start()
    return len(text)


def scan_text(text: str) -> tuple[Link, ...]:
    """Bare http(s) URLs in plain text, without the punctuation that ends a sentence."""
    links = []
    for found in _TEXT_URL.finditer(text):
        url = _trim(found.group())
        if is_trackable(url):
            links.append(Link(found.start(), found.start() + len(url), url))
    return tuple(links)


def _trim(url: str) -> str:
    while url:
        last = url[-1]
        if last in _TRAILING_PUNCTUATION:
            url = url[:-1]
        elif last in _OPENER_OF and url.count(last) > url.count(_OPENER_OF[last]):
            url = url[:-1]  # "(see https://x.org/a)": the bracket closes the prose
        else:
            break
    return url


# --- templates: a text with holes for the tracked URLs ------------------------------------


class Slot(NamedTuple):
    """A hole in a template, filled per copy (a link's URL, a part's body, a header)."""

    kind: str
    number: int = 0


@dataclass(frozen=True, slots=True)
class Template(Generic[AnyStr]):
    literals: tuple[AnyStr, ...]  # one more than slots: literal, slot, literal, ...
    slots: tuple[Slot, ...]

    @classmethod
    def of(cls, items: Iterable[AnyStr | Slot], empty: AnyStr) -> Template[AnyStr]:
        literals: list[AnyStr] = []
        slots: list[Slot] = []
        run: list[AnyStr] = []
        for item in items:
            if isinstance(item, Slot):
                literals.append(empty.join(run))
                slots.append(item)
                run = []
            else:
                run.append(item)
        literals.append(empty.join(run))
        return cls(tuple(literals), tuple(slots))

    def render(self, values: Mapping[Slot, AnyStr]) -> AnyStr:
        pieces = [self.literals[0]]
        for slot, literal in zip(self.slots, self.literals[1:], strict=True):
            pieces.append(values[slot])
            pieces.append(literal)
        return self.literals[0][:0].join(pieces)


def download_label(filename: str, size: int) -> str:
    return f"{filename} ({human_size(size)})"


def human_size(size: int) -> str:
    if size < 1000:
        return f"{size} bytes"
    value = size / 1000
    for unit in ("KB", "MB"):
        if value < 1000:
            return f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def downloads_html(labels: Sequence[str], charset: str) -> list[str | Slot]:
    items: list[str | Slot] = ['<div><p>Attachments:</p><ul style="margin:0">']
    for n, label in enumerate(labels):
        label = html.escape(label)
        # A name the part's charset cannot spell becomes character references.
        label = label.encode(charset, "xmlcharrefreplace").decode(charset)
        items += ['<li><a href="', Slot("download", n), f'">{label}</a></li>']
    items.append("</ul></div>")
    return items


def downloads_text(labels: Sequence[str], charset: str) -> list[str | Slot]:
    items: list[str | Slot] = ["\n\nAttachments:\n"]
    for n, label in enumerate(labels):
        label = label.encode(charset, "replace").decode(charset)
        items += [f"- {label}\n  <", Slot("download", n), ">\n"]
    return items


Edit = tuple[int, int, list[str | Slot]]  # replace text[start:end] with these items


def splice(text: str, edits: list[Edit]) -> Template[str]:
    items: list[str | Slot] = []
    done = 0
    for start, end, replacement in sorted(edits, key=lambda edit: edit[0]):
        items.append(text[done:start])
        items += replacement
        done = end
    items.append(text[done:])
    return Template.of(items, "")


def link_edits(links: Sequence[Link], index: Mapping[str, int], *, in_html: bool) -> list[Edit]:
    quote = '"' if in_html else ""  # an HTML span includes the attribute's quotes
    return [(link.start, link.end, [quote, Slot("link", index[link.url]), quote]) for link in links]
