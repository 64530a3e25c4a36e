"""Contact keys: the address (or id) a record names, as HubSpot will file it, or why it cannot be.

HubSpot keeps one contact per email address, compared without regard to case.  An address that
HubSpot would refuse (INVALID_EMAIL) or file under a different spelling must not become a contact
of its own, so every key is made canonical before it is used anywhere (the state, the fence, the
batch reads):

- Unicode NFC: "zoë" typed with a combining diaeresis (NFD) and with the one character "ë" are
  one address, as a person reading them would expect;
- surrounding white space is dropped and an email is lower-cased;
- refused, with the reason and the fix: control characters (NUL ...), invisible format
  characters (zero-width spaces and joiners, bidi marks: they make two addresses look alike), a
  display form (`Ann <ann@example.com>`), a `mailto:` link, a quoted or dotted-wrong local part, a
  local part over 64 characters, an address over 254, a domain that is not a host name
  (RFC 5321 limits, the ones mail servers and HubSpot apply).

Letters of any script stay allowed in the local part and the domain (internationalised
addresses).  The module is pure: a key in, a key or a refusal out.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

MAX_LOCAL_LENGTH = 64
MAX_ADDRESS_LENGTH = 254
MAX_LABEL_LENGTH = 63
MAX_KEY_LENGTH = 1_000  # an id that is not an email: longer is not an id


@dataclass(frozen=True)
class Refused:
    """Why a record's contact key cannot be used, said so a shop employee can fix the data."""

    reason: str


_KNOWN: dict[tuple[str, str], str | Refused] = {}  # (raw, match_on) -> key: customers come back
_KNOWN_KEPT = 4_096  # emptied when full
_SHORT_RAW = 320  # only keys this short are kept (an address has at most 254 characters)


def contact_key(raw: str, match_on: str) -> str | Refused:
    """The canonical key of `raw` for the identity property `match_on`, or why it is refused."""
    if len(raw) > _SHORT_RAW or type(raw) is not str:
        return _contact_key(raw, match_on)
    known = _KNOWN.get((raw, match_on))
    if known is None:
        known = _contact_key(raw, match_on)
        if len(_KNOWN) >= _KNOWN_KEPT:
            _KNOWN.clear()
        _KNOWN[(raw, match_on)] = known
    return known


def _contact_key(raw: str, match_on: str) -> str | Refused:
    key = unicodedata.normalize("NFC", raw).strip()
    hidden = _hidden_character(key)
    if hidden is not None:
        return Refused(
            f"{_shown(key)} holds {hidden}, which no real {_what(match_on)} "
            "contains; remove it from the shop's data"
        )
    if match_on != "email":
        if len(key) > MAX_KEY_LENGTH:
            return Refused(
                f"the {match_on} is {len(key):,} characters long; at most "
                f"{MAX_KEY_LENGTH:,} are allowed"
            )
        return key
    return _email(key.lower())


def _email(address: str) -> str | Refused:
    if address.startswith("mailto:"):
        return Refused(
            f"{_shown(address)} is a mailto: link, not an address: write "
            f"'{address[len('mailto:') :]}'"
        )
    if "<" in address or ">" in address:
        inner = address[address.find("<") + 1 : address.rfind(">")] if ">" in address else ""
        fix = f": write '{inner.strip()}'" if "@" in inner else ""
        return Refused(f"{_shown(address)} is an address in a display form (<...>){fix}")
    if address.count("@") != 1:
        return Refused(f"{_shown(address)} is not a valid email address (it needs exactly one @)")
    local, domain = address.split("@")
    if not local or not domain:
        return Refused(
            f"{_shown(address)} is not a valid email address (nothing "
            f"{'before' if not local else 'after'} the @)"
        )
    if len(local) > MAX_LOCAL_LENGTH:
        return Refused(
            f"{_shown(address)} is not a valid email address: the part before the @ "
            f"is {len(local)} characters long, and mail servers take at most "
            f"{MAX_LOCAL_LENGTH}"
        )
    if len(address) > MAX_ADDRESS_LENGTH:
        return Refused(
            f"{_shown(address)} is not a valid email address: it is "
            f"{len(address)} characters long, at most {MAX_ADDRESS_LENGTH} are allowed"
        )
    if not _LOCAL.fullmatch(local) or local.startswith(".") or local.endswith(".") or ".." in local:
        return Refused(
            f"{_shown(address)} is not a valid email address (the part before the "
            "@ has a character or dot that addresses cannot have)"
        )
    labels = domain.split(".")
    if (
        len(labels) < 2
        or not all(_LABEL.fullmatch(label) for label in labels)
        or any(len(label) > MAX_LABEL_LENGTH for label in labels)
        or not _TOP_LEVEL.fullmatch(labels[-1])
    ):
        return Refused(
            f"{_shown(address)} is not a valid email address ('{_clip(domain)}' "
            "is not a domain name such as example.com)"
        )
    return address


def _hidden_character(key: str) -> str | None:
    """The first control or invisible format character of `key`, described, or None."""
    if key.isascii() and key.isprintable():
        return None  # (printable ASCII has none of them: the usual address, quickly)
    for char in key:
        category = unicodedata.category(char)
        if category in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            name = unicodedata.name(char, "")
            return f"the invisible character U+{ord(char):04X}" + (f" ({name})" if name else "")
    return None


def _what(match_on: str) -> str:
    return "email address" if match_on == "email" else match_on


def _shown(text: str) -> str:
    """`text` quoted for a message, cut when long (a 300-character local part is not news)."""
    return repr(_clip(text))


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# RFC 5322 atext plus letters, marks and digits of any script (RFC 6531).
_LOCAL = re.compile(r"[\w!#$%&'*+/=?^`{|}~.-]+")
_LABEL = re.compile(r"[^\W_](?:(?:[^\W_]|-)*[^\W_])?")
_TOP_LEVEL = re.compile(r"[^\W\d_]{2,}|xn--[a-z0-9-]+")
