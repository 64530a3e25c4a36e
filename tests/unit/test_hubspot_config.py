"""Settings from the environment: defaults, versions, and the token kept out of sight."""

from __future__ import annotations

import pytest

from hubmap.hubspot import HubSpotConfigError, HubSpotSettings

TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"


def test_from_env_defaults():
    settings = HubSpotSettings.from_env({"HUBSPOT_ACCESS_TOKEN": TOKEN})
    assert settings.access_token == TOKEN
    assert settings.api_base == "https://api.hubapi.com"
    assert settings.forms_base == "https://api.hsforms.com"
    assert settings.api_version == "v3"
    assert settings.portal_id is None
    assert settings.objects_path("contacts") == "/crm/v3/objects/contacts"
    assert settings.properties_path("contacts") == "/crm/v3/properties/contacts"


def test_from_env_reads_everything():
    settings = HubSpotSettings.from_env(
        {
            "HUBSPOT_ACCESS_TOKEN": f"  {TOKEN}\n",
            "HUBSPOT_API_BASE": "http://127.0.0.1:8080/",
            "HUBSPOT_FORMS_BASE": "http://127.0.0.1:8081",
            "HUBSPOT_PORTAL_ID": "12345",
            "HUBSPOT_API_VERSION": "2026-03",
            "HUBSPOT_TIMEOUT": "7.5",
            "HUBSPOT_CONNECT_TIMEOUT": "2",
            "HUBSPOT_RATE_LIMIT_MAX": "190",
            "HUBSPOT_RATE_LIMIT_INTERVAL_MS": "10000",
        }
    )
    assert settings.access_token == TOKEN
    assert settings.api_base == "http://127.0.0.1:8080"
    assert settings.portal_id == "12345"
    assert settings.timeout == (2.0, 7.5)
    assert settings.rate_limit_max == 190


def test_date_based_version_switches_path_shape():
    settings = HubSpotSettings(access_token=TOKEN, api_version="2026-03")
    assert settings.objects_path("contacts") == "/crm/objects/2026-03/contacts"
    assert settings.properties_path("contacts") == "/crm/properties/2026-03/contacts"


@pytest.mark.parametrize("env", [{}, {"HUBSPOT_ACCESS_TOKEN": ""}, {"HUBSPOT_ACCESS_TOKEN": "  "}])
def test_missing_token_is_a_configuration_error_naming_the_variable(env):
    with pytest.raises(HubSpotConfigError) as info:
        HubSpotSettings.from_env(env)
    assert "HUBSPOT_ACCESS_TOKEN" in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("version", ["3", "v0", "2026-13", "2026/03", "latest"])
def test_bad_version_is_rejected(version):
    with pytest.raises(HubSpotConfigError, match="HUBSPOT_API_VERSION"):
        HubSpotSettings(access_token=TOKEN, api_version=version)


@pytest.mark.parametrize("name", ["HUBSPOT_TIMEOUT", "HUBSPOT_RATE_LIMIT_MAX"])
def test_bad_numbers_are_rejected(name):
    with pytest.raises(HubSpotConfigError, match=name):
        HubSpotSettings.from_env({"HUBSPOT_ACCESS_TOKEN": TOKEN, name: "ten"})


def test_token_not_in_repr_or_str():
    settings = HubSpotSettings(access_token=TOKEN, portal_id="1")
    assert TOKEN not in repr(settings)
    assert TOKEN not in str(settings)
    assert TOKEN not in f"{settings!r} {settings}"
    assert "***" in repr(settings)


def test_settings_are_frozen_and_keyword_only():
    settings = HubSpotSettings(access_token=TOKEN)
    with pytest.raises(AttributeError):
        settings.api_base = "https://evil.example"  # type: ignore[misc]
    with pytest.raises(TypeError):
        HubSpotSettings(TOKEN)  # type: ignore[misc]
