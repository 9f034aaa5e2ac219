"""``make dev``: the synthesized stack served on 127.0.0.1, and the local stand-ins it needs.

Also the home of the fakes the tests share with it (moto, the Bedrock fake, the OIDC issuer,
the Lambda runtime stand-in): the dev server needs them outside the test suite, so they live
here and the tests import them from here.
"""
