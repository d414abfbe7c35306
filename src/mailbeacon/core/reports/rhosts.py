"""What some receiving servers mean by their own replies: one code table per host.

Whoever relays the report, a big provider's reply text follows that provider's
published error codes. Each row is a host pattern, matched against every host
the report names (Remote-MTA, the "host x [ip]" of the diagnostic, the
Reporting-MTA, then the recipient's domain), and phrases, matched against
"COMMAND: diagnostic" (the SMTP command the server answered, when the report
says, e.g. "DATA: 550 Unknown user ..."). The first phrase that matches gives
the reason. Sisimai keeps the same kind of table (its Rhost modules).

To support a new provider, add a row: no code change should be needed.
"""

from __future__ import annotations

from mailbeacon.core.reports.rules import Pattern, rx

Phrases = tuple[tuple[Pattern, str], ...]

REMOTE_HOSTS: tuple[tuple[Pattern, Phrases], ...] = (
    # au (KDDI) answers its users' reception filters with an address-less
    # "550 : User unknown"; a missing mailbox gets "550 <address>: User unknown"
    # and, from the auone-net.jp servers, "Recipient address rejected." alone.
    (
        rx(r"\.(ezweb\.ne\.jp|au\.com|auone-net\.jp)\b"),
        (
            (rx(r"550 : user unknown"), "filtered"),
            (rx(r">: user unknown"), "userunknown"),
            (rx(r">: recipient address rejected\.?\s*$"), "userunknown"),
        ),
    ),
    # Orange / Wanadoo / La Poste end each reply with a code such as "LPN007_416"
    # or "OFR_416"; the last three digits are the documented reason.
    (
        rx(r"\b(orange|wanadoo|laposte)\.(fr|net)\b"),
        (
            (rx(r"\b[a-z]{3}\d{0,3}_41[68]\b"), "userunknown"),
            (rx(r"\b[a-z]{3}\d{0,3}_426\b"), "suspend"),
            (rx(r"\b[a-z]{3}\d{0,3}_505\b"), "systemerror"),
            (rx(r"\b[a-z]{3}\d{0,3}_506\b"), "spamdetected"),
            (rx(r"\b[a-z]{3}\d{0,3}_(107|999)\b"), "blocked"),
        ),
    ),
    # Outlook.com / Hotmail say "mailbox unavailable" only of missing mailboxes.
    (
        rx(r"\.(hotmail|outlook|live|msn)\.com\b"),
        ((rx(r"requested action not taken: mailbox unavailable"), "userunknown"),),
    ),
    # Cox names the rule that refused the mail after "AUP#" (its error-code page).
    (
        rx(r"\bcox\.net$"),
        (
            (rx(r"aup#(cxbl|cdrbl|ipbl\d+)\b"), "blocked"),
            (rx(r"aup#cxdns\b"), "requireptr"),
            (rx(r"aup#cxsndr\b"), "authfailure"),
            (rx(r"aup#cxsmtp\b"), "rejected"),
            (rx(r"aup#(cxcnct|cxmxrt)\b"), "toomanyconn"),
            (rx(r"aup#(cxthrt|cxmj)\b"), "securityerror"),
            (rx(r"aup#urlbl\d+\b"), "spamdetected"),
            (rx(r"too many invalid recipients", r"too many bad commands"), "blocked"),
            (rx(r"rejected - no rdns", r"dns check failure"), "requireptr"),
            (rx(r"sender rejected"), "rejected"),
            (rx(r"recipient rejected"), "userunknown"),
        ),
    ),
    # Mimecast's documented replies (community.mimecast.com, SMTP error codes).
    (
        rx(r"\.mimecast\.com$"),
        (
            (rx(r"(spf|dkim|dmarc) sender invalid - envelope rejected"), "authfailure"),
            (rx(r"local ct ip reputation"), "badreputation"),
            (rx(r"host network,? not allowed", r"anti-spoofing policy"), "policyviolation"),
            (rx(r"content examination policy"), "policyviolation"),
            (rx(r"email rejected due to security policies"), "virusdetected"),
            (rx(r"maximum email size exceeded"), "mesgtoobig"),
            (rx(r"open relay (is )?not allowed"), "norelaying"),
            (rx(r"envelope blocked", r"blocked senders"), "rejected"),
            (rx(r"this route requires", r"submitter failed to"), "securityerror"),
            (rx(r"550 invalid recipient", r"501 invalid address"), "userunknown"),
        ),
    ),
    # Symantec MessageLabs: "542 <address> Rejected" and "No such user" both
    # mean the mailbox does not exist.
    (
        rx(r"\.messagelabs\.com$"),
        (
            (rx(r"please turn on smtp authentication"), "securityerror"),
            (rx(r"\b542 .* rejected", r"no such user"), "userunknown"),
        ),
    ),
    # NTT docomo answers "550 Unknown user" to RCPT for a missing mailbox, and
    # to DATA when the user's reception settings refuse the sender; its relays
    # report the latter as 5.2.0.
    (
        rx(r"\bmfsmax\.docomo\.ne\.jp$"),
        (
            (rx(r"552 too much mail data"), "mailboxfull"),
            (rx(r"552 too many recipients"), "toomanyconn"),
            (rx(r"^5\.2\.0 "), "filtered"),
            (rx(r"^5\.1\.1 ", r"^\S* RCPT: .*unknown user"), "userunknown"),
            (rx(r"^\S* DATA: .*unknown user"), "rejected"),
        ),
    ),
    # Yahoo Inc. (yahoo.com, aol.com): senders.yahooinc.com/smtp-error-codes.
    (
        rx(r"\.yahoodns\.net$"),
        (
            (rx(r"dd this user doesn't have a ", r"mailbox not found"), "userunknown"),
            (rx(r" is no longer valid\.", r"this mailbox is disabled"), "suspend"),
            (rx(r"not accepted for policy reasons"), "policyviolation"),
            (rx(r"user is receiving mail too quickly"), "speeding"),
            (rx(r"will be permanently deferred"), "rejected"),
        ),
    ),
    # AOL's own relays report a broken MX answer as the domain accepting no mail.
    (
        rx(r"\.mx\.aol\.com$"),
        (
            (rx(r"type=mx: malformed or unexpected name server reply"), "notaccept"),
            (rx(r"host or domain name not found"), "hostunknown"),
        ),
    ),
    # Facebook names each refusal with a code such as "RCP-P2" (its
    # postmaster response-code page).
    (
        rx(r"(^|\.)facebook\.com$"),
        (
            (rx(r"\b(rcp-p1|int-p[134])\b"), "userunknown"),
            (rx(r"\brcp-p[23]\b"), "filtered"),
            (rx(r"\brcp-t4\b"), "suspend"),
            (rx(r"\brcp-t1\b"), "systemerror"),
            (rx(r"\b(msg-p1|int-p2)\b"), "mesgtoobig"),
            (rx(r"\bmsg-p2\b"), "contenterror"),
            (rx(r"\bmsg-p3\b"), "notcompliantrfc"),
            (rx(r"\bpol-p[67]\b"), "spamdetected"),
            (rx(r"\bpol-p5\b"), "virusdetected"),
            (rx(r"\bpol-[pt]\d\b"), "blocked"),
            (rx(r"\bdns-(p[12]|t1)\b"), "rejected"),
            (rx(r"\bdns-(p3|t2)\b"), "requireptr"),
            (rx(r"\b(con-t\d|msg-t1)\b"), "toomanyconn"),
        ),
    ),
    # Amazon SES receiving: "Message content rejected" is its spam verdict.
    (
        rx(r"^inbound-smtp\.[\w-]+\.amazonaws\.com$"),
        ((rx(r"message content rejected"), "spamdetected"),),
    ),
)
