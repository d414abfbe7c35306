"""The exception tree.

    MailbeaconError                 anything mailbeacon raises on purpose
    ├── ConfigError                 a setting has a value we cannot use
    ├── TokenError                  a tracking token is forged, truncated or unknown
    ├── MimeError                   a message we were given is not usable MIME
    ├── StoreError                  the event store cannot be opened or written
    ├── RelayError                  the SMTP relay cannot be reached or refused us
    └── (beside the code they guard) a request that names what is not there or is out
        of range: services.campaigns.UnknownCampaign, services.events.BadPage and
        NoSuchEvent, store.stream.BadCursor, services.api_keys.ApiKeyError

Each carries a message written for the person who will read it on a terminal.
"""


class MailbeaconError(Exception):
    """Base of every error mailbeacon raises on purpose."""


class ConfigError(MailbeaconError):
    """A setting has a value that cannot be used."""


class TokenError(MailbeaconError):
    """A tracking token failed verification."""


class MimeError(MailbeaconError):
    """An input message is not usable MIME."""


class StoreError(MailbeaconError):
    """The event store cannot be opened, migrated or written."""


class RelayError(MailbeaconError):
    """The SMTP relay cannot be reached, or refused the session."""
