"""The REST API: FastAPI routers under ``contract.API_BASE_PATH``, run in Lambda through Mangum.

Identity is whatever the JWT authorizer told API Gateway (``requestContext.authorizer``), read
from the Lambda event Mangum keeps in the ASGI scope (:mod:`functions.main.deps`); the app never
parses tokens itself. Every error has one body shape (:mod:`functions.main.errors`).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from functions.contract import CORS_ALLOW_HEADERS, CORS_EXPOSE_HEADERS, REST_ROUTES
from functions.main import errors
from functions.main.routers import (
    attachments,
    export,
    feedback,
    health,
    knowledge_bases,
    me,
    messages,
    sessions,
    usage,
)
from functions.main.settings import cors_origins

app = FastAPI(
    title="AI Assistant API",
    version="1.0.0",
    # The route table is exactly contract.REST_ROUTES; the schema is app.openapi().
    openapi_url=None,
    docs_url=None,
    redoc_url=None,
    # CLI clients may omit Content-Type; a JSON body is still JSON. (Strictness guards
    # cookie-authenticated browsers against CSRF; this API takes bearer tokens only.)
    strict_content_type=False,
)
for resource in (
    health,
    sessions,
    messages,
    me,
    knowledge_bases,
    usage,
    feedback,
    export,
    attachments,
):
    app.include_router(resource.router)

errors.install(app)
# Outermost, so error responses carry CORS headers too, and preflights (the unauthenticated
# OPTIONS methods of the REST API) are answered here for the configured origins.
app.add_middleware(
    CORSMiddleware,
    allow_origins=cors_origins(),
    allow_methods=sorted({route.method for route in REST_ROUTES}),
    allow_headers=list(CORS_ALLOW_HEADERS),
    expose_headers=list(CORS_EXPOSE_HEADERS),
    max_age=600,
)
