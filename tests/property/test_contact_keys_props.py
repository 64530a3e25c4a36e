"""Properties of contact keys: any text gives a key or a refusal with a reason, never an error;
an accepted email is canonical (one spelling per address: NFC, lower case, trimmed; a second
pass changes nothing) and carries nothing HubSpot refuses or misfiles; spellings of one address
(NFC and NFD, upper and lower case) are one key; the refused classes from the field stay refused.
"""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hubmap.contact_keys import Refused, contact_key

local_chars = st.sampled_from(
    list("abcxyz019.+-_'") + ["é", "ö", "ü", "ñ", "å"]
)  # not ß: "SS" upper
locals_ = st.text(local_chars, min_size=1, max_size=20).filter(
    lambda t: not t.startswith(".") and not t.endswith(".") and ".." not in t
)
labels = st.text(st.sampled_from(list("abcmnz019") + ["ü", "é"]), min_size=1, max_size=12)
domains = st.builds(
    lambda parts, top: ".".join([*parts, top]),
    st.lists(labels, min_size=1, max_size=3),
    st.sampled_from(["com", "de", "co", "example", "ie"]),
)
addresses = st.builds(lambda local, domain: f"{local}@{domain}", locals_, domains)


@given(st.text(max_size=80), st.sampled_from(["email", "shop_customer_id"]))
def test_any_text_gives_a_key_or_a_reason(raw: str, match_on: str) -> None:
    key = contact_key(raw, match_on)
    if isinstance(key, Refused):
        assert key.reason
        return
    assert key == key.strip() and unicodedata.is_normalized("NFC", key)
    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in key)
    assert contact_key(key, match_on) == key  # canonical: a second pass changes nothing
    if match_on == "email":
        assert key == key.lower() and key.count("@") == 1 and len(key) <= 254


@given(addresses)
def test_every_spelling_of_one_address_is_one_key(address: str) -> None:
    key = contact_key(address, "email")
    assert isinstance(key, str), key
    for spelling in (
        unicodedata.normalize("NFD", address),
        address.upper(),
        f"  {address.title()}\t",
    ):
        assert contact_key(spelling, "email") == key


@pytest.mark.parametrize(
    "raw, says",
    [
        ("<a@b.example>", "write 'a@b.example'"),
        ("Ann Lee <ann@example.com>", "write 'ann@example.com'"),
        ("mailto:a@b.example", "write 'a@b.example'"),
        ("a\x00b@example.com", "U+0000"),
        ("a\u200bb@example.com", "ZERO WIDTH SPACE"),
        ("ann\u202e@example.com", "RIGHT-TO-LEFT OVERRIDE"),
        ("x" * 300 + "@example.com", "300 characters"),
        ("a@b@example.com", "exactly one @"),
        ("ann@example", "not a domain name"),
        ("a..b@example.com", "before the @"),
    ],
)
def test_addresses_hubspot_refuses_or_misfiles_are_refused_with_the_fix(
    raw: str, says: str
) -> None:
    refused = contact_key(raw, "email")
    assert isinstance(refused, Refused) and says in refused.reason
    assert len(refused.reason) < 250  # a long address is cut in the message, not repeated
