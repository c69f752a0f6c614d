"""What every endpoint of the integration API shares, whichever app it belongs to: tokens and
their authentication, scopes and permissions, idempotency, throttles, the JSON parser, the one
error shape, pagination and the schema hooks. payments/api and kyc/api build on it."""
