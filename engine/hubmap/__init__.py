"""hubmap: declarative YAML mappings from shop orders to HubSpot contacts."""

__version__ = "0.1.0"
