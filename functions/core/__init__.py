"""Runtime plumbing every function may use: AWS clients, settings, observability, the clock,
the invocation's deadline and the caller's identity. Keep this module empty: the authorizer
imports ``functions.core.settings`` and must not pay for boto3 or Powertools."""
