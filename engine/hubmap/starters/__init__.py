"""Starter mappings for `hubmap init`: recognise a sample's platform, make a shipped mapping a
shop's own, or write a commented skeleton for a platform hubmap does not ship."""
