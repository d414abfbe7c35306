"""Non-standard bounces: each mail server's plain-text format as one data row.

A ``BounceRule`` says how to recognise a server's bounce (who sends it, its
Subject, a header or a sentence only that server writes), where in the text
the error section starts and where the returned message begins, how a line
naming a failed recipient looks, and which of the server's own sentences mean
a specific reason. The engine in ``bounce.py`` applies the first rule that
recognises a message; ``GENERIC`` is the catch-all for the formats that share
the usual shape ("address" then "what the remote server said").

To support a new server, add a row: no code change should be needed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

Pattern = re.Pattern[str]


def rx(*alternatives: str) -> Pattern:
    return re.compile("|".join(f"(?:{a})" for a in alternatives), re.I | re.M)


@dataclass(frozen=True)
class BounceRule:
    name: str
    sender: Pattern | None = None  # matched against the From header
    subject: Pattern | None = None  # matched against the Subject header
    header: Pattern | None = None  # matched against "Name: value" lines of the headers
    marker: Pattern | None = None  # matched against the notice text
    begin: Pattern | None = None  # the error section starts after this line
    end: Pattern | None = None  # the returned message starts at this line
    recipient: Pattern | None = None  # a line naming a recipient: group "rcpt"
    reasons: tuple[tuple[Pattern, str], ...] = field(default=())  # server phrase -> reason
    reason: str = ""  # what every bounce of this format means, when it means one thing
    need_all: bool = False  # every given recogniser must match, not just one
    words_first: bool = False  # the words about a recipient come before its address


# Where a returned copy of the original message usually begins.
ORIGINAL_STARTS = rx(
    r"^-+ ?(this is a copy of|below this line is a copy|original message|the original message|"
    r"returned message|undelivered message|message headers? follow|headers of)",
    r"^-{3,} ?(original|returned|unsent|your message)",
    r"^--- Below this line",
    r"^Message headers follow",
    r"^[ \t]*-+\s*Original message\s*-+",
    r"^Original message headers:",
    r"^Original message follows",
    r"^Included is a copy of the message header",
    r"^Original mail as follows",
    r"^[ \t]*-+ The header of the original message is following\. -+",
    r"^Content-Type: message/rfc822",
    r"^Received: from .* by ",
    r"^Return-Path: <",
)
_ADDR = r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+"

# Lines that name a failed recipient in the common shapes:
#   <a@b>:  (qmail, Postfix)      a@b  (Exim, indented)     <a@b>... reason (Sendmail)
#   >>> a@b / * a@b / "a@b": / Unknown user: a@b / RCPT TO:<a@b> / delivering to <a@b>
GENERIC_RECIPIENT = re.compile(
    rf"^[ \t]*(?:>{{2,3}}\s*|\*\s*|(?:[\w -]{{0,30}}(?:rcpt|recipient|user|address|mailbox|"
    rf"destinataire|to))\s*:\s*)?"
    rf"[\"<(]?(?P<rcpt>{_ADDR})[\">)]?(?=\s|[:.,;]|$)"
    rf"|(?:rcpt to|recipient|recipients|addressed to|delivering your (?:mail|message) to|"
    rf"delivery to|delivered to|deliver (?:mail |message )?to|to the following "
    rf"(?:address|recipient)s?|(?:original|final)-recipient|mail to|email address|"
    rf"destinataire)\b[^<\n@]{{0,30}}<?(?:rfc822;\s*)?(?P<r5>{_ADDR})>?",
    re.I | re.M,
)
NOTHING = re.compile(r"(?!)")  # for formats whose text never names the recipient

RULES: tuple[BounceRule, ...] = (
    # Google Groups refuses a post (no such group, or no permission to post) in
    # the poster's language; the group is named in X-Failed-Recipients.
    BounceRule(
        "googlegroups",
        header=rx(r"^X-Failed-Recipients: .*@googlegroups\.com"),
        recipient=NOTHING,
        reasons=((rx(r"the email account that you tried to reach does not exist"), "userunknown"),),
        reason="rejected",
    ),
    # fml mailing list manager: refusals of non-members and loop alerts.
    BounceRule(
        "fml",
        header=rx(r"^X-MLServer: fml"),
        recipient=re.compile(rf"(?:mailing list|message-id in) <(?P<rcpt>{_ADDR})>", re.I),
        reasons=(
            (rx(r"not a member"), "rejected"),
            (rx(r"duplicated message-id", r"loop alert"), "systemerror"),
        ),
    ),
    # au one net (KDDI): a Japanese notice, then the server's English lines.
    BounceRule(
        "kddi",
        sender=rx(r"@[^@\s]*\b(dion|ezweb|au)\.ne\.jp", r"@[^@\s]*\.au\.com"),
        marker=rx(r"^[ \t]*Could not be delivered to: <"),
        recipient=re.compile(rf"Could not be delivered to: <(?P<rcpt>{_ADDR})>", re.I),
        reasons=(
            # EZweb's reception filter (the user's own settings).
            (
                rx(r"each of the following recipients was rejected by a remote mail server"),
                "filtered",
            ),
        ),
    ),
    BounceRule(
        "qmail",
        marker=rx(
            r"^Hi\. This is the qmail",
            r"this is the qmail-send program",
            r"^Hi\. This is the .* program at",
            r"qmail-send program at",
        ),
        end=rx(r"^--- Below this line is a copy", r"^--- Enclosed are the original headers"),
        recipient=re.compile(rf"^<(?P<rcpt>{_ADDR})>:", re.M),
        reasons=(
            (rx(r"sorry, no mailbox here by that name", r"no such user here"), "userunknown"),
            (rx(r"sorry, i couldn't find any host named"), "hostunknown"),
            (rx(r"this message is looping"), "systemerror"),
        ),
    ),
    BounceRule(
        "exim",
        marker=rx(
            r"^This message was created automatically by mail delivery software",
            r"following address\(es\) failed",
            r"^[ \t]*Message delayed for more than",
            r"recipient addresses that were\s+incorrectly constructed",
        ),
        end=rx(
            r"^-+ This is a copy of the message",
            r"^-+ The body of the message is",
            r"^-+ This is a copy of your message",
        ),
        recipient=re.compile(
            # "  a@b <c@d>: malformed address: <c@d> may not follow a@b": the
            # mailbox Exim refused is the one in angle brackets.
            rf"^  \S+ <(?P<r4>{_ADDR})>(?=: malformed address)"
            rf"|^  (?:(?P<rcpt>{_ADDR})|<(?P<r3>{_ADDR})>)(?:\s*<(?P<r2>{_ADDR})>)?\s*(?:$|:\s)",
            re.M,
        ),
        reasons=(
            # "mailbox is full: retry timeout exceeded": the cause, then the outcome.
            (rx(r"mailbox is full: retry timeout exceeded"), "mailboxfull"),
            (rx(r"retry timeout exceeded", r"retry time not reached for any host"), "expired"),
            (rx(r"all relevant mx records point to non-existent hosts"), "hostunknown"),
        ),
    ),
    BounceRule(
        "gmail",
        sender=rx(r"mailer-daemon@(googlemail|google)\.com"),
        end=rx(r"^[ \t]*-+ ?Original message ?-+"),
        reasons=(
            (
                rx(
                    r"the email account that you tried to reach does not exist",
                    r"because the address couldn't be found\. check for typos",
                ),
                "userunknown",
            ),
            (rx(r"the email account that you tried to reach is over quota"), "mailboxfull"),
            # Google Groups refusing a post as spam (the group's own filter).
            (rx(r"to group \S+ was rejected due to spam classification"), "spamdetected"),
            # "DNS type 'mx' lookup of x responded with code NXDOMAIN" comes with
            # a 4.0.0: Google retries, so it is a network error, not a dead domain.
            (rx(r"dns type '?mx'? lookup of \S+ responded with code nxdomain"), "networkerror"),
            (rx(r"dns error: domain name not found"), "hostunknown"),
        ),
    ),
    # Sendmail v5 (no DSN): the transcript gives the server's answers first,
    # then "554 <address>... <why>"; a refused RCPT shows as ">>> RCPT To:<a>".
    BounceRule(
        "v5sendmail",
        subject=rx(r"^Returned mail: "),
        marker=rx(r"^[ \t]*-+ Unsent message follows -+"),
        need_all=True,
        begin=rx(r"^[ \t]*-+ Transcript of session follows -+"),
        end=rx(r"^[ \t]*-+ Unsent message follows -+"),
        recipient=re.compile(
            rf"^(?:<<< )?\d{{3}} <(?P<rcpt>{_ADDR})>\.\.\.|^>>> RCPT To:\s*<(?P<r2>{_ADDR})>", re.I
        ),
        words_first=True,
    ),
    # Lotus Notes: "Failure Reasons", the reason, then the address on its own line.
    BounceRule(
        "notes",
        subject=rx(r"^Undeliverable message"),
        marker=rx(r"^-+ Failure Reasons\s*-+"),
        need_all=True,
        begin=rx(r"^-+ Failure Reasons\s*-+"),
        end=rx(r"^-+ Returned Message\s*-+"),
        recipient=re.compile(rf"^[ \t]*(?P<rcpt>{_ADDR})[ \t]*$"),
        words_first=True,
        reasons=(
            (rx(r"not listed in public name & address book"), "userunknown"),
            (rx(r"message has exceeded maximum hop count"), "networkerror"),
        ),
    ),
    # Progress IMail Server (X-Mailer: <SMTP32 vN>): "Unknown user: <address>".
    BounceRule(
        "imailserver",
        header=rx(r"^X-Mailer: <SMTP32 v"),
        end=rx(r"^Original message follows\."),
        recipient=re.compile(rf"^(?:[\w ]{{3,40}}: |undeliverable to )(?P<rcpt>{_ADDR})", re.I),
        words_first=True,
        reasons=(
            (rx(r"unknown user", r"invalid final delivery userid"), "userunknown"),
            (rx(r"unknown host"), "hostunknown"),
            (rx(r"user mailbox exceeds allowed size"), "mailboxfull"),
            (rx(r"requested action not taken: virus detected"), "virusdetected"),
            (rx(r"blacklisted url in message"), "spamdetected"),
            (rx(r"delivery failed \d+ attempts"), "expired"),
        ),
    ),
    # Verizon Wireless picture/video mail (MMS) gateway.
    BounceRule(
        "verizon",
        sender=rx(r"post_master@vtext\.com", r"sysadmin@.*\.vzwpix\.com"),
        reasons=(
            (
                rx(r"no valid recipients", r"requested action not taken: no such user here"),
                "userunknown",
            ),
        ),
    ),
    # Sendmail: a session transcript; "Deferred: <why>" names the cause of a
    # delay that later turned into "could not be delivered for N hours".
    BounceRule(
        "sendmail",
        marker=rx(r"^[ \t]*-+ Transcript of session follows -+"),
        reasons=(
            (rx(r"deferred: name server: \S+ host name lookup failure"), "networkerror"),
            (rx(r"deferred: connection refused by"), "blocked"),
            # mail.local, the local delivery agent, has no such mailbox: no filter.
            (rx(r"mail\.local: unknown user"), "userunknown"),
        ),
    ),
    # Microsoft Exchange 2000/2003: "<address> on <date>", the reason, then an
    # "MSEXCH:IMS:..." diagnostic line.
    BounceRule(
        "exchange2003",
        marker=rx(r"^[ \t]*MSEXCH:(IMS|IMC|MSExchange)"),
        reasons=((rx(r"the recipient name is not recognized"), "userunknown"),),
    ),
    # Lotus Domino: "was not delivered to: <address> because: <reason>".
    BounceRule(
        "domino",
        subject=rx(r"^DELIVERY FAILURE:"),
        marker=rx(r"^because:[ \t]*$"),
        need_all=True,
        reasons=(
            (
                rx(r"not listed in (the )?(domino directory|public name (& |and )?address book)"),
                "userunknown",
            ),
        ),
    ),
)

# PowerMTA states its own verdict per recipient in the delivery-status part.
POWERMTA_CATEGORIES = {
    "bad-mailbox": "userunknown",
    "bad-domain": "hostunknown",
    "inactive-mailbox": "suspend",
    "quota-issues": "mailboxfull",
    "message-expired": "expired",
    "no-answer-from-host": "networkerror",
    "relaying-issues": "norelaying",
    "spam-related": "spamdetected",
    "virus-related": "virusdetected",
    "policy-related": "policyviolation",
    "content-related": "contenterror",
    "routing-errors": "systemerror",
    "protocol-errors": "systemerror",
}

# The catch-all: any report-like message whose text names a recipient.
GENERIC = BounceRule("generic", end=ORIGINAL_STARTS, recipient=GENERIC_RECIPIENT)

# How a report announces itself even when no rule knows the server.
REPORT_SENDERS = rx(
    r"mailer-daemon",
    r"postmaster@",
    r"mail ?delivery (system|subsystem)",
    r"^[ \t]*<>[ \t]*$",
    r"mail ?administrator",
    r"mdaemon",
    r"system ?administrator",
)
REPORT_SUBJECTS = rx(
    r"undeliver", r"delivery (status )?(notification|failure|failed|report|problem)",
    r"returned mail", r"failure notice", r"mail delivery (failed|failure|system)",
    r"could not be delivered", r"delivery has failed", r"nondeliverable", r"non-?delivery",
    r"returned to sender", r"rejected:", r"warning: could not send", r"delayed mail",
    r"mail system error", r"message status", r"bounce", r"error sending message",
    r"delivery notification", r"unzustellbar", r"non remis", r"echec de distribution",
    r"failed delivery", r"permanent (error|failure)", r"delivery (delayed|incomplete)",
    r"mail could not", r"unable to deliver", r"notice of (delivery|undeliverable)",
    r"mensaje no entregado", r"nicht zustellbar", r"spam notification", r"address not found",
    r"メールエラー", r"配信(不能|エラー|失敗)", r"不達", r"未達",
)  # fmt: skip
