"""instrument(), extract_attachments() and compose() over real messages in tests/data/mime."""

from __future__ import annotations

import base64
import binascii
import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest

from mailbeacon.clock import FixedClock
from mailbeacon.core import html_links
from mailbeacon.core.instrument import (
    Download,
    Options,
    Recipient,
    TrackedCopy,
    compose,
    crlf,
    extract_attachments,
    instrument,
)
from mailbeacon.core.tokens import Claims, Keyring, TokenKind, TrackLevel, decode, decode_verp
from mailbeacon.errors import MimeError

DATA = Path(__file__).parent.parent / "data" / "mime"
KEYRING = Keyring({1: b"k" * 32}, 1)
PUBLIC = "https://t.example.com"
CAMPAIGN = 3
READER = Recipient("reader@example.org", 7)
TOKEN = r"([A-Za-z0-9_-]+)"
PIXEL = re.compile(
    rf'<img src="{PUBLIC}/o/{TOKEN}\.gif" width="1" height="1" alt="" '
    r'style="display:block;border:0;width:1px;height:1px">'
)


def load(name: str) -> bytes:
    return (DATA / name).read_bytes()


def run(
    source: bytes, recipients: tuple[Recipient, ...] = (READER,), **options: object
) -> list[TrackedCopy]:
    settings: dict[str, object] = {"campaign": CAMPAIGN, "public_url": PUBLIC, **options}
    opts = Options(**settings)  # type: ignore[arg-type]
    return instrument(source, recipients, opts, KEYRING, FixedClock())


def one(source: bytes, **options: object) -> TrackedCopy:
    [copy] = run(source, (READER,), **options)
    return copy


def reparse(data: bytes) -> EmailMessage:
    msg = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(msg, EmailMessage)
    return msg


def body(data: bytes, content_type: str) -> str:
    """The decoded text of the first part of this type (the way a mail client sees it)."""
    for part in reparse(data).walk():
        if part.get_content_type() == content_type and not part.is_attachment():
            assert isinstance(part, EmailMessage)
            return str(part.get_content()).replace("\r\n", "\n")
    raise AssertionError(f"no {content_type} part")


def part_header(data: bytes, content_type: str, name: str) -> str:
    for part in reparse(data).walk():
        if part.get_content_type() == content_type:
            return str(part[name])
    raise AssertionError(f"no {content_type} part")


def claims_in(text: str, prefix: str = "/c/") -> list[Claims]:
    return [decode(token, KEYRING) for token in re.findall(rf"{PUBLIC}{prefix}{TOKEN}", text)]


def click(url: str, link: int, message: int = 7) -> Claims:
    return Claims(TokenKind.CLICK, CAMPAIGN, message, link, url)


def blocks(data: bytes, boundary: bytes) -> list[bytes]:
    """The raw bytes between one boundary line and the next."""
    return re.split(rb"\r?\n--" + re.escape(boundary) + rb"(?:--)?\r?\n", data)[1:-1]


def longest_line(data: bytes) -> int:
    return max(len(line) for line in data.split(b"\r\n"))


# --- the pixel ---------------------------------------------------------------------------


def test_pixel_goes_right_after_the_body_tag() -> None:
    html = body(one(load("alternative-qp.eml")).data, "text/html")
    body_tag = '<BODY bgcolor="#ffffff" style="margin:0">'
    assert PIXEL.match(html, html.index(body_tag) + len(body_tag))
    assert len(PIXEL.findall(html)) == 1


def test_pixel_goes_first_when_there_is_no_body_tag() -> None:
    html = body(one(load("html-no-body.eml")).data, "text/html")
    assert PIXEL.match(html)


def test_pixel_goes_after_the_head_when_there_is_no_body_tag() -> None:
    source = (
        b"From: a@example.com\nContent-Type: text/html\n\n"
        b"<!DOCTYPE html><html><head><title>t</title></head><p>hi</p></html>\n"
    )
    html = body(one(source).data, "text/html")
    assert PIXEL.match(html, html.index("</head>") + len("</head>"))


def test_each_recipient_gets_their_own_pixel() -> None:
    second = Recipient("other@example.org", 8)
    copies = run(load("html-no-body.eml"), (READER, second))
    pixels = [claims_in(body(copy.data, "text/html"), "/o/") for copy in copies]
    assert pixels == [
        [Claims(TokenKind.OPEN, CAMPAIGN, 7)],
        [Claims(TokenKind.OPEN, CAMPAIGN, 8)],
    ]


def test_text_only_mail_gets_no_pixel_but_tracked_links() -> None:
    copy = one(load("text-only.eml"))
    assert b"/o/" not in copy.data
    assert copy.links == (
        "https://example.com/report.html",
        "https://example.com/faq?q=1",
        "https://example.com/details",
        "https://example.com/angle",
    )
    text = body(copy.data, "text/plain")
    lines = text.splitlines()
    assert re.fullmatch(rf"see {PUBLIC}/c/{TOKEN}, then {PUBLIC}/c/{TOKEN}!", lines[2])
    assert re.fullmatch(rf"\(Details: {PUBLIC}/c/{TOKEN}\)", lines[3])
    assert re.fullmatch(rf"<{PUBLIC}/c/{TOKEN}>", lines[4])
    assert lines[5] == "Not a link: ftp://example.com/file and mailto:a@example.com"
    assert claims_in(text) == [click(url, n) for n, url in enumerate(copy.links, 1)]


# --- links -------------------------------------------------------------------------------


def test_links_in_html_and_text_share_one_numbering() -> None:
    copy = one(load("alternative-qp.eml"))
    news = "https://example.com/news?id=1&lang=de"  # written &amp; in the href
    shop = "https://shop.example.com/sale"
    assert copy.links == (
        news,
        shop,
        "https://example.com/unquoted",
        "https://example.com/area",
        "https://en.wikipedia.org/wiki/Foo_(bar)",
    )
    html = body(copy.data, "text/html")
    assert claims_in(html) == [
        click(news, 1),
        click(shop, 2),
        click("https://example.com/unquoted", 3),
        click("https://example.com/area", 4),
        click(news, 1),
    ]
    text = body(copy.data, "text/plain")
    assert claims_in(text) == [click(news, 1), click(shop, 2), click(copy.links[4], 5)]
    assert re.search(rf"Read it online: {PUBLIC}/c/{TOKEN}\.\n", text)
    assert re.search(rf"Our shop \({PUBLIC}/c/{TOKEN}\) is open", text)


def test_rewritten_hrefs_are_quoted_and_keep_the_tag() -> None:
    html = body(one(load("alternative-qp.eml")).data, "text/html")
    assert re.search(rf'<A HREF="{PUBLIC}/c/{TOKEN}" class=button>Shop</A>', html)
    assert re.search(rf'<a href="{PUBLIC}/c/{TOKEN}">unquoted</a>', html)
    assert re.search(rf'<area shape="rect" coords="0,0,1,1" href="{PUBLIC}/c/{TOKEN}">', html)
    assert "&amp;lang" not in html and "news?id" not in html


@pytest.mark.parametrize(
    "kept",
    [
        '<a href="mailto:news@example.com">mail</a>',
        '<a href="tel:+4930123456">call</a>',
        '<a href="#top">top</a>',
        '<img src="https://cdn.example.com/logo.png" alt="Logo">',
        'data-href="https://example.com/data"',
        '<!-- <a href="https://example.com/in-a-comment">hidden</a> -->',
        "<style>a{color:red}</style>",
    ],
)
def test_what_is_not_a_web_link_is_left_alone(kept: str) -> None:
    assert kept in body(one(load("alternative-qp.eml")).data, "text/html")


def test_attached_messages_are_not_rewritten() -> None:
    copy = one(load("mixed-8bit-attachments.eml"))
    assert b"See https://example.net/inner-link which must stay as it is." in copy.data
    assert copy.links == ("https://example.com/bericht",)


def test_entities_are_decoded_for_signing_and_escaped_when_written() -> None:
    source = (
        b"From: a@example.com\nContent-Type: text/html\n\n"
        b"<a href='https://x.example/?a=1&amp;b=&quot;2&quot;'>x</a>\n"
    )
    assert one(source, public_url="https://t.example.com/?x&y").links == (
        'https://x.example/?a=1&b="2"',
    )
    html = body(one(source, public_url="https://t.example.com/?x&y").data, "text/html")
    assert re.search(rf'href="https://t.example.com/\?x&amp;y/c/{TOKEN}"', html)


@pytest.mark.parametrize(
    ("text", "urls"),
    [
        ("see https://a.example/x.", ["https://a.example/x"]),
        ("is it https://a.example/x?", ["https://a.example/x"]),
        ("(https://a.example/x)", ["https://a.example/x"]),
        ("https://en.wikipedia.org/wiki/A_(b)", ["https://en.wikipedia.org/wiki/A_(b)"]),
        ("[link](https://a.example/md)", ["https://a.example/md"]),
        ("'https://a.example/q';", ["https://a.example/q"]),
        ("«https://a.example/fr»", ["https://a.example/fr"]),
        ("HTTP://A.EXAMPLE/UP", ["HTTP://A.EXAMPLE/UP"]),
        ("https:// nothing, http://", []),
        ("ftp://a.example/ mailto:x@a.example", []),
    ],
)
def test_bare_urls_in_plain_text(text: str, urls: list[str]) -> None:
    assert [link.url for link in html_links.scan_text(text)] == urls


@pytest.mark.parametrize(
    ("html", "urls"),
    [
        ('<a href="https://a.example/">', ["https://a.example/"]),
        ("<a\n  HREF = 'https://a.example/'>", ["https://a.example/"]),
        ('<a title="x>y" href="https://a.example/">', ["https://a.example/"]),
        ('<a data-href="https://x.example/" href="https://a.example/">', ["https://a.example/"]),
        ('<a href="  https://a.example/  ">', ["https://a.example/"]),
        ('<a href="https://a.example/long\n  /path">', ["https://a.example/long  /path"]),
        (
            '<!--[if mso]><v:roundrect href="https://v.example/"><![endif]-->',
            ["https://v.example/"],
        ),
        ('<!-- <a href="https://c.example/"> -->', []),
        ("<script>s = '<a href=\"https://s.example/\">'</script>", []),
        ('<abbr href="https://x.example/">', []),
        ('<a href="javascript:alert(1)">', []),
        ("<a href>", []),
    ],
)
def test_hrefs_in_html(html: str, urls: list[str]) -> None:
    assert [link.url for link in html_links.scan_html(html).links] == urls


# --- tokens, levels and headers ----------------------------------------------------------


def test_identified_copies_carry_the_bounce_token_in_a_header() -> None:
    copy = one(load("alternative-qp.eml"))
    [value] = reparse(copy.data).get_all("X-Mailbeacon-ID", [])
    assert decode(str(value), KEYRING) == Claims(TokenKind.BOUNCE, CAMPAIGN, 7)
    assert b"forged-by-the-sender" not in copy.data


def test_anonymous_tokens_name_no_recipient() -> None:
    copies = run(
        load("alternative-qp.eml"),
        (READER, Recipient("other@example.org", 0)),
        level=TrackLevel.ANONYMOUS,
        bounce_domain="bounce.example",
    )
    for copy in copies:
        html = body(copy.data, "text/html")
        tokens = claims_in(html, "/o/") + claims_in(html)
        assert {(c.message, c.level) for c in tokens} == {(0, TrackLevel.ANONYMOUS)}
        assert copy.envelope_from is None
        assert "X-Mailbeacon-ID" not in reparse(copy.data)
    first, second = (copy.data.replace(copy.message_id.encode(), b"") for copy in copies)
    assert first == second


def test_level_off_sends_the_message_untouched() -> None:
    source = load("alternative-qp.eml")
    copies = run(source, (READER, Recipient("other@example.org", 8)), level=TrackLevel.OFF)
    for copy in copies:
        assert copy.data == crlf(source)
        assert copy.message_id == "<original-1@example.com>"
        assert copy.links == ()
        assert copy.envelope_from is None


def test_level_off_adds_a_message_id_only_when_there_is_none() -> None:
    source = load("text-only.eml")
    copies = run(source, (READER, Recipient("other@example.org", 8)), level=TrackLevel.OFF)
    for copy in copies:
        assert copy.data == f"Message-ID: {copy.message_id}\r\n".encode() + crlf(source)
    assert copies[0].message_id != copies[1].message_id


def test_verp_return_path_names_the_copy() -> None:
    copy = one(load("text-only.eml"), bounce_domain="bounce.example")
    assert copy.envelope_from is not None
    found = re.fullmatch(r"bounces\+([a-z2-7]+)@bounce\.example", copy.envelope_from)
    assert found and len(found.group(1)) + len("bounces+") <= 64  # RFC 5321 local part
    assert decode_verp(found.group(1), KEYRING) == Claims(TokenKind.BOUNCE, CAMPAIGN, 7)
    assert one(load("text-only.eml")).envelope_from is None


def test_message_ids_are_fresh_and_unique() -> None:
    recipients = tuple(Recipient(f"r{n}@example.org", n) for n in range(1, 4))
    copies = run(load("alternative-qp.eml"), recipients, message_id_domain="mail.example.com")
    ids = [copy.message_id for copy in copies]
    assert len(set(ids)) == 3
    for copy in copies:
        assert re.fullmatch(r"<[0-9a-f]{32}@mail\.example\.com>", copy.message_id)
        assert reparse(copy.data).get_all("Message-ID") == [copy.message_id]


def test_read_receipt_headers() -> None:
    source = load("alternative-qp.eml")
    plain = reparse(one(source).data)
    assert plain.get_all("Disposition-Notification-To") == ["old-receipts@example.com"]
    asked = reparse(one(source, receipt_to="receipts@example.com").data)
    assert asked.get_all("Disposition-Notification-To") == ["<receipts@example.com>"]
    assert "Return-Receipt-To" not in asked
    legacy = reparse(
        one(source, receipt_to="receipts@example.com", legacy_receipt_headers=True).data
    )
    for name in ("Disposition-Notification-To", "Return-Receipt-To", "X-Confirm-Reading-To"):
        assert legacy.get_all(name) == ["<receipts@example.com>"]


def test_set_to_header_addresses_each_copy_to_its_recipient() -> None:
    second = Recipient("other@example.org", 8)
    copies = run(load("alternative-qp.eml"), (READER, second), set_to_header=True)
    assert [reparse(copy.data).get_all("To") for copy in copies] == [
        ["reader@example.org"],
        ["other@example.org"],
    ]


def test_downloads_are_listed_as_tracked_links() -> None:
    downloads = (Download(11, "report.pdf", 1_234_567), Download(12, "a<b>.txt", 12))
    copy = one(load("alternative-qp.eml"), downloads=downloads)
    html = body(copy.data, "text/html")
    assert re.search(
        rf'<li><a href="{PUBLIC}/d/{TOKEN}">report\.pdf \(1\.2 MB\)</a></li>'
        rf'<li><a href="{PUBLIC}/d/{TOKEN}">a&lt;b&gt;\.txt \(12 bytes\)</a></li></ul></div>'
        r"\s*</body>",
        html,
    )
    expected = [
        Claims(TokenKind.DOWNLOAD, CAMPAIGN, 7, 11),
        Claims(TokenKind.DOWNLOAD, CAMPAIGN, 7, 12),
    ]
    assert claims_in(html, "/d/") == expected
    text = body(copy.data, "text/plain")
    assert re.search(rf"- report\.pdf \(1\.2 MB\)\n  <{PUBLIC}/d/{TOKEN}>", text)
    assert claims_in(text, "/d/") == expected


def test_the_honeypot_is_one_invisible_link() -> None:
    copy = one(load("alternative-qp.eml"), honeypot=True)
    html = body(copy.data, "text/html")
    traps = [c for c in claims_in(html) if c.kind is TokenKind.HONEYPOT]
    assert traps == [Claims(TokenKind.HONEYPOT, CAMPAIGN, 7, url=PUBLIC)]
    assert re.search(rf'<a href="{PUBLIC}/c/{TOKEN}" style="display:none;[^"]*"[^>]*></a>', html)
    assert PUBLIC not in copy.links


# --- encodings and byte-for-byte preservation ---------------------------------------------


def test_crlf_and_lf_sources_give_the_same_copies() -> None:
    source = load("mixed-8bit-attachments.eml")
    assert crlf(source) != source
    assert run(crlf(source)) == run(source)


def test_quoted_printable_part_stays_quoted_printable() -> None:
    copy = one(load("alternative-qp.eml"))
    assert part_header(copy.data, "text/html", "Content-Transfer-Encoding") == "quoted-printable"
    assert longest_line(blocks(copy.data, b"==alt==")[1]) <= 76
    assert "Grüße!" in body(copy.data, "text/html")


def test_base64_part_stays_base64() -> None:
    copy = one(load("html-no-body.eml"))
    assert part_header(copy.data, "text/html", "Content-Transfer-Encoding") == "base64"
    encoded = copy.data.split(b"\r\n\r\n", 1)[1]
    assert all(len(line) <= 76 for line in encoded.split(b"\r\n"))
    html = base64.b64decode(encoded).decode()
    assert claims_in(html) == [click("https://example.com/a", 1), click("https://example.com/b", 2)]


def test_batch_copies_match_copies_made_one_at_a_time() -> None:
    """Many recipients take a faster path for quoted-printable; it must say the same."""
    recipients = (READER, Recipient("other@example.org", 8), Recipient("x@example.org", 300))
    together = run(load("alternative-qp.eml"), recipients, downloads=(Download(1, "ü.pdf", 9),))
    for copy, recipient in zip(together, recipients, strict=True):
        [alone] = run(
            load("alternative-qp.eml"), (recipient,), downloads=(Download(1, "ü.pdf", 9),)
        )
        for content_type in ("text/html", "text/plain"):
            assert body(copy.data, content_type) == body(alone.data, content_type)
        assert longest_line(blocks(copy.data, b"==alt==")[1]) <= 76


def test_seven_bit_text_that_gains_non_ascii_becomes_quoted_printable() -> None:
    copy = one(load("text-only.eml"), downloads=(Download(5, "Bericht ü.pdf", 2048),))
    assert part_header(copy.data, "text/plain", "Content-Transfer-Encoding") == "quoted-printable"
    assert "- Bericht ü.pdf (2.0 KB)" in body(copy.data, "text/plain")


def test_eight_bit_lines_too_long_for_smtp_become_quoted_printable() -> None:
    line = "x" * 950 + ' <a href="https://example.com/long">ü</a>'
    source = (
        "From: a@example.com\nContent-Type: text/html; charset=utf-8\n"
        f"Content-Transfer-Encoding: 8bit\n\n<body>{line}</body>\n"
    ).encode()
    copy = one(source)
    assert part_header(copy.data, "text/html", "Content-Transfer-Encoding") == "quoted-printable"
    assert longest_line(copy.data) <= 76
    assert line.replace("https://example.com/long", "") in re.sub(
        rf"{PUBLIC}/c/{TOKEN}", "", body(copy.data, "text/html")
    )


def test_short_eight_bit_parts_stay_eight_bit() -> None:
    copy = one(load("mixed-8bit-attachments.eml"))
    assert part_header(copy.data, "text/html", "Content-Transfer-Encoding") == "8bit"
    assert "<p>Grüße aus Köln – <a href=" in copy.data.decode()


def test_unchanged_headers_and_parts_keep_their_bytes() -> None:
    source = load("mixed-8bit-attachments.eml")
    copy = one(source)
    for line in crlf(source).split(b"\r\n")[:4]:  # From, To, Subject, X-Custom
        assert line + b"\r\n" in copy.data
    before, after = blocks(crlf(source), b"outer"), blocks(copy.data, b"outer")
    assert before[1:] == after[1:]  # the PDF and the attached message
    inner_before, inner_after = blocks(before[0], b"inner"), blocks(after[0], b"inner")
    assert inner_before[0] == inner_after[0]  # 8-bit UTF-8 text without links
    assert inner_before[1] != inner_after[1]  # the HTML, which has a link


def test_latin1_parts_keep_their_charset() -> None:
    source = load("latin1-8bit.eml")
    copy = one(source)
    assert b"Subject: =?iso-8859-1?q?R=E9sum=E9?=\r\n" in copy.data
    assert blocks(crlf(source), b"b1")[0] == blocks(copy.data, b"b1")[0]
    html_block = blocks(copy.data, b"b1")[1]
    assert b"charset=iso-8859-1" in html_block and b"Voil\xe0 le <a href=" in html_block
    assert b">r\xe9sum\xe9</a>" in html_block
    assert "Voilà le" in body(copy.data, "text/html")


def test_copies_are_valid_mime() -> None:
    for name in ("alternative-qp.eml", "mixed-8bit-attachments.eml", "related-inline-image.eml"):
        copy = one(load(name), downloads=(Download(1, "f.pdf", 10),), honeypot=True)
        assert b"\n" not in copy.data.replace(b"\r\n", b"")
        for part in reparse(copy.data).walk():
            assert part.defects == []


# --- what instrument() refuses -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("not-a-message.eml", "not an email message"),
        ("no-from.eml", "no From header"),
        ("no-boundary.eml", "has no boundary parameter"),
        ("truncated.eml", "has no closing boundary"),
        ("boundary-never-used.eml", "never uses its boundary"),
        ("bad-base64.eml", "undecodable base64"),
        ("unknown-charset.eml", "unknown charset 'x-klingon'"),
    ],
)
def test_malformed_messages_are_refused_by_name(name: str, problem: str) -> None:
    with pytest.raises(MimeError, match=re.escape(problem)):
        run(load(name))


def test_an_unknown_charset_is_fine_where_nothing_changes() -> None:
    source = load("unknown-charset.eml").replace(b"https://example.com/", b"no link")
    assert one(source).data.endswith(b"\r\n\r\nQapla' no link\r\n")
    with pytest.raises(MimeError, match="unknown charset"):
        one(source, downloads=(Download(1, "a.pdf", 1),))


@pytest.mark.parametrize(
    "recipients",
    [(), (Recipient("reader@example.org", 0),), (Recipient("a@x\r\nBcc: b@y", 1),)],
)
def test_programmer_errors_are_value_errors(recipients: tuple[Recipient, ...]) -> None:
    with pytest.raises(ValueError):
        run(load("text-only.eml"), recipients)


# --- extract_attachments -----------------------------------------------------------------


def test_extract_attachments_keeps_inline_images_and_removes_the_rest() -> None:
    stripped, attachments = extract_attachments(load("related-inline-image.eml"))
    assert [(a.filename, a.content_type) for a in attachments] == [
        ("photo.png", "image/png"),
        ("Zahlen ü.csv", "text/csv"),
    ]
    assert attachments[0].data.startswith(b"\x89PNG")
    assert attachments[1].data.replace(b"\r\n", b"\n") == b"a,b\n1,2"
    types = [part.get_content_type() for part in reparse(stripped).walk()]
    assert types == [
        "multipart/mixed",
        "multipart/related",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "image/png",
    ]


def test_extracted_attachments_keep_their_bytes() -> None:
    source = load("mixed-8bit-attachments.eml")
    stripped, attachments = extract_attachments(source)
    pdf, forwarded = attachments
    assert (pdf.filename, pdf.content_type) == ("Bericht.pdf", "application/pdf")
    assert pdf.data == b"%PDF-1.4\n" + bytes(range(256)) * 3 + b"\n%%EOF\n"
    assert forwarded.content_type == "message/rfc822"
    assert reparse(forwarded.data)["Message-ID"] == "<inner@example.net>"
    assert blocks(crlf(source), b"outer")[0] == blocks(stripped, b"outer")[0]
    downloads = tuple(Download(n, a.filename, len(a.data)) for n, a in enumerate(attachments, 1))
    copy = one(stripped, downloads=downloads)
    assert len(claims_in(body(copy.data, "text/html"), "/d/")) == 2
    assert len(claims_in(body(copy.data, "text/plain"), "/d/")) == 2


def test_extracting_the_only_part_leaves_a_text_part_for_the_list() -> None:
    source = (
        b"From: a@example.com\nContent-Type: multipart/mixed; boundary=z\n\n--z\n"
        b"Content-Type: application/zip\nContent-Disposition: attachment; filename=a.zip\n"
        b"Content-Transfer-Encoding: base64\n\nUEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==\n--z--\n"
    )
    stripped, [archive] = extract_attachments(source)
    assert archive.filename == "a.zip" and archive.data.startswith(b"PK")
    copy = one(stripped, downloads=(Download(1, "a.zip", len(archive.data)),))
    assert "a.zip (22 bytes)" in body(copy.data, "text/plain")


def test_extract_without_attachments_returns_the_message_as_is() -> None:
    source = load("alternative-qp.eml")
    assert extract_attachments(source) == (crlf(source), [])


# --- compose -----------------------------------------------------------------------------


def composed(**overrides: object) -> bytes:
    arguments: dict[str, object] = {
        "sender": "Jörg Müller <joerg@example.com>",
        "to": ["Zoë <zoe@example.org>", "bob@example.org"],
        "subject": "Grüße – ein Überblick",
        "html": "<p>Hallo <a href='https://example.com/'>Zoë</a></p>",
        "text": "Hallo Zoë, https://example.com/",
        "clock": FixedClock(),
        "message_id_domain": "example.com",
    }
    arguments.update(overrides)
    return compose(**arguments)  # type: ignore[arg-type]


def test_compose_round_trips_non_ascii_subject_and_names() -> None:
    data = composed()
    head = data.split(b"\r\n\r\n", 1)[0]
    assert head.isascii() and b"=?utf-8?" in head
    msg = reparse(data)
    assert msg["Subject"] == "Grüße – ein Überblick"
    assert msg["From"].addresses[0].display_name == "Jörg Müller"
    assert [a.display_name for a in msg["To"].addresses] == ["Zoë", ""]
    assert msg["Date"] == "Thu, 01 Jan 2026 00:00:00 +0000"
    assert re.fullmatch(r"<[0-9a-f]{32}@example\.com>", msg["Message-ID"])
    assert msg.get_content_type() == "multipart/alternative"
    assert body(data, "text/plain").rstrip() == "Hallo Zoë, https://example.com/"
    assert "<a href='https://example.com/'>Zoë</a>" in body(data, "text/html")
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert data == composed()  # the clock decides boundaries and ids, so tests can too


def test_compose_with_attachments_is_mixed() -> None:
    data = composed(html=None, attachments=[("Übersicht.pdf", "application/pdf", b"%PDF-1")])
    msg = reparse(data)
    assert msg.get_content_type() == "multipart/mixed"
    [attachment] = list(msg.iter_attachments())
    assert isinstance(attachment, EmailMessage)
    assert attachment.get_filename() == "Übersicht.pdf"
    assert attachment.get_content() == b"%PDF-1"


def test_compose_html_only_then_instrument() -> None:
    data = composed(text=None, html="<html><body><p>Hi</p></body></html>")
    assert reparse(data).get_content_type() == "text/html"
    html = body(one(data, set_to_header=True).data, "text/html")
    assert PIXEL.search(html)


def test_compose_needs_a_body() -> None:
    with pytest.raises(ValueError):
        composed(html=None, text=None)


def test_qp_helper_joins_runs_without_long_lines() -> None:
    from mailbeacon.core.mime import qp_run

    for n in range(70, 160):
        for filler in (b"x", b"\xc3\xa9", b"=", b" "):
            run_ = filler * n
            encoded = qp_run(run_)
            assert all(len(line) <= 76 for line in encoded.split(b"\r\n"))
            assert binascii.a2b_qp(encoded + b"end") == run_ + b"end"


# -- hostile shapes found in review --------------------------------------------------------


def _copy_of(raw: bytes) -> bytes:
    options = Options(campaign=1, public_url="https://t.example")
    [copy] = instrument(raw, [Recipient("b@example.net", 5)], options, KEYRING, FixedClock())
    return copy.data


def test_an_eight_bit_url_in_a_part_without_charset_is_percent_encoded() -> None:
    raw = (b"From: a@example.com\r\nTo: b@example.net\r\nContent-Type: text/html\r\n\r\n"
           b'<a href="http://x.example/caf\xe9">x</a>\r\n')
    body = BytesParser(policy=policy.default).parsebytes(_copy_of(raw)).get_payload(decode=True)
    [token] = re.findall(rb"/c/([A-Za-z0-9_-]+)", body)
    assert decode(token.decode(), KEYRING).url == "http://x.example/caf%E9"


def test_deep_nesting_is_refused_not_a_crash() -> None:
    depth = 400
    head = b"From: a@example.com\r\nTo: b@example.net\r\n"
    inner = b"Content-Type: text/plain\r\n\r\nhi\r\n"
    for n in range(depth):
        inner = (f'Content-Type: multipart/mixed; boundary="b{n}"\r\n\r\n--b{n}\r\n'.encode()
                 + inner + f"--b{n}--\r\n".encode())
    with pytest.raises(MimeError, match="nested deeper"):
        _copy_of(head + inner)


def test_an_empty_boundary_is_refused() -> None:
    raw = (b'From: a@example.com\r\nContent-Type: multipart/alternative; boundary=""\r\n\r\n'
           b"--\r\nContent-Type: text/plain\r\n\r\nhi\r\n----\r\n")
    with pytest.raises(MimeError, match="empty boundary"):
        _copy_of(raw)
