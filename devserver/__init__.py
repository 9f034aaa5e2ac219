"""``make dev``: the synthesized stack served on 127.0.0.1: its REST and WebSocket gateways, the
Lambda runtime and worker pool, the stream mappings and TTL, the dev identity and local model.

The AWS doubles it runs on (moto, the Bedrock fake, the OIDC issuer, ``@connections``) are in
:mod:`fakes`, shared with the tests.
"""
