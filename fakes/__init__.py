"""The test doubles of the AWS services and identity provider the functions call: one double per
service, shared by ``tests/`` and ``make dev`` (``devserver/``), so there is one to extend.

Each double speaks the real wire format to the real client (boto3, httpx, the authorizer's
JWKS fetch) on 127.0.0.1, rather than patching the client. What each emulates faithfully:

* :mod:`fakes.moto`: moto's server for DynamoDB, DynamoDB Streams, KMS, SQS, bedrock-agent and
  every other API moto implements, answering one request at a time (moto's backends are not
  thread-safe; DynamoDB's updates are atomic). :class:`~fakes.moto.MotoServer` is the only way
  the project starts moto: in-process for the tests and ``make dev``, in a child process for
  the Terraform emulator and the IAM-enforcing moto of the security tests.
* :mod:`fakes.bedrock`: bedrock-runtime ``converse``/``converse_stream`` and
  bedrock-agent-runtime ``retrieve``, which moto lacks: real event-stream frames sent as they
  are produced, a model's pacing (time to first delta, deltas a second) and latency, the
  service's validation errors, guardrails, prompt caching and its usage split, and faults
  (throttling, errors, a stream broken, cut, reset or held mid-way).
* :mod:`fakes.knowledge_base`: one Bedrock knowledge base, bedrock-agent ``ListKnowledgeBases``
  and ``GetKnowledgeBase`` and bedrock-agent-runtime ``Retrieve``, over a built-in corpus or a
  folder of text files, passages ranked by the terms they share with the query (``make dev``'s
  knowledge-base path).
* :mod:`fakes.connections`: the WebSocket management API (``@connections``): frames recorded
  one by one with when each was answered, 410 GoneException for a deleted or closed
  connection (or after N frames, on demand), 413 over 128 KiB, a per-call latency. With the
  dev server's gateway plugged in, frames reach the clients' sockets.
* :mod:`fakes.oidc`: an OpenID Connect issuer (discovery and JWKS), counting its requests,
  with outages, slow and broken answers on demand; :class:`~fakes.oidc.SigningKey` signs
  tokens, even malformed ones. (The authorizer is also tested against panva's certified
  ``oidc-provider``, a real independent implementation, in
  ``tests/functions/authorizer/real_provider``.)
* :mod:`fakes.dynamodb_streams`: a table's stream read as a Lambda event source mapping
  delivers it (``eventSourceARN``, epoch-second creation times, the identity of TTL deletes).
* :mod:`fakes.dynamodb_faults`: a proxy in front of moto that fails, throttles, holds or loses
  the reply of a chosen DynamoDB request, or runs something first.
* :mod:`fakes.dynamodb_meter`: a proxy in front of moto pricing each request in capacity units
  by DynamoDB's published rules (moto reports none).
* :mod:`fakes.lambda_signing`: Lambda's code-signing API, added to moto (which lacks it).
* :mod:`fakes.emulator`: ``python -m fakes.emulator``, moto plus those extensions in a process
  of its own, which Terraform's AWS provider applies the synthesized stacks against.

And what they run on: :mod:`fakes.loopback` (the HTTP server and AWS's restJson error format)
and :mod:`fakes.process` (stopping a child process).

``devserver/`` keeps the local stack itself (gateways, Lambda runtime and pool, stream
mappings, TTL, the dev identity and model); ``tests/support/`` keeps pytest fixtures, event
samples, the spec, the contract's tables and the Lambda clock. Nothing here is packaged into a
Lambda zip: only ``functions/`` is.
"""
