"""The HubSpot client: settings, transport, rate limiter, retry policy, errors and API calls.

Modules, one job each: `config` (settings from the environment, paths per API version),
`transport` (the one place that touches the network), `ratelimit` (the shared rolling-window
limiter), `retry` (what is retried and how long to wait), `errors` (the exception tree and the
parsing of HubSpot's error bodies), `client` (the calls hubmap makes).
"""

from hubmap.hubspot.client import (
    BATCH_LIMIT,
    BatchReadResult,
    BatchUpsertResult,
    ClientStats,
    DuplicateKeyError,
    HubSpotClient,
    ItemError,
    PropertyBatchResult,
    RequestRecord,
    UpsertedContact,
    normalize_key,
)
from hubmap.hubspot.config import HubSpotSettings
from hubmap.hubspot.errors import (
    DailyLimitReached,
    ErrorDetail,
    HubSpotAuthError,
    HubSpotConfigError,
    HubSpotConflict,
    HubSpotConnectionError,
    HubSpotError,
    HubSpotNotFound,
    HubSpotRateLimited,
    HubSpotRejected,
    HubSpotServerError,
    HubSpotTimeout,
    HubSpotTransportError,
    HubSpotValidationError,
    parse_error_body,
)
from hubmap.hubspot.ratelimit import RateLimiter
from hubmap.hubspot.retry import RetryPolicy
from hubmap.hubspot.transport import MockTransport, RequestsTransport, Response, Transport

__all__ = [
    "BATCH_LIMIT",
    "BatchReadResult",
    "BatchUpsertResult",
    "ClientStats",
    "DailyLimitReached",
    "DuplicateKeyError",
    "ErrorDetail",
    "HubSpotAuthError",
    "HubSpotClient",
    "HubSpotConfigError",
    "HubSpotConflict",
    "HubSpotConnectionError",
    "HubSpotError",
    "HubSpotNotFound",
    "HubSpotRateLimited",
    "HubSpotRejected",
    "HubSpotServerError",
    "HubSpotSettings",
    "HubSpotTimeout",
    "HubSpotTransportError",
    "HubSpotValidationError",
    "ItemError",
    "MockTransport",
    "PropertyBatchResult",
    "RateLimiter",
    "RequestRecord",
    "RequestsTransport",
    "Response",
    "RetryPolicy",
    "Transport",
    "UpsertedContact",
    "normalize_key",
    "parse_error_body",
]
