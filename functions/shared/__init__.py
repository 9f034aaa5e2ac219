"""Code shared by the three functions. Keep this module empty: the authorizer imports
``functions.shared.contract`` and must not pay for boto3 or pydantic."""
