"""The REST API fuzzed against its own OpenAPI document.

``tests.functions`` sets the variables Powertools and the CORS middleware read when
``functions.*`` is first imported; importing it here keeps that first, whichever test package
a worker collects first.
"""

import tests.functions  # noqa: F401
