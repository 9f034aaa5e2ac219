"""JWT authorizer for the REST API (TOKEN events) and WebSocket ``$connect`` (REQUEST events).

Standard library plus PyJWT only: no boto3, pydantic or Powertools, so cold starts stay small.
"""
