"""DynamoDB storage: one module per repository (sessions, messages, connections, idempotency
records, usage), the turn transactions that span two tables, item codecs and pagination."""
