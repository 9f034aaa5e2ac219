"""Tests of functions/data: turn storage, history, idempotency, quotas, pagination, isolation."""
