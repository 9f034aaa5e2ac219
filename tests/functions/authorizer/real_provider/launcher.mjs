// Runs panva's oidc-provider (OpenID Certified, installed from npm via package-lock.json) on
// 127.0.0.1 for the authorizer tests. Usage: node launcher.mjs <config.json>
//
// The config names the port, the private signing keys (JWKs: a restart with other keys is a key
// rotation), the resource servers (resource indicators -> JWT access tokens) and the clients.
// A client's "shape" makes the provider's own tokens look like another provider's (claim names
// and header typ), so the same real token endpoint serves every profile of the authorizer:
//   generic  - as oidc-provider issues them: typ at+jwt, client_id, scope (RFC 9068)
//   cognito  - token_use "access"/"id", username, no typ
//   okta     - cid instead of client_id, scp as a list, uid (user tokens)
//   entra    - azp instead of client_id, scp (delegated) or roles (app-only), tid, oid, typ JWT
// Logins are programmatic: GET /interaction/:uid completes the login as the request's
// login_hint (default "ada") and grants every requested scope, so no HTML form is involved.
import { readFileSync } from 'node:fs';

import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const issuer = `http://127.0.0.1:${config.port}`;
const shapes = Object.fromEntries(config.clients.map((c) => [c.client_id, c.shape || 'generic']));
const ACCOUNTS = config.accounts || {};

function account(id) {
  return ACCOUNTS[id] || { email: `${id}@example.test` };
}

function reshapeAccessToken(shape, payload, header) {
  const clientId = payload.client_id;
  const scopes = (payload.scope || '').split(' ').filter(Boolean);
  const user = payload.sub !== clientId ? payload.sub : undefined;
  if (shape === 'cognito') {
    payload.token_use = 'access';
    if (user) payload.username = user;
    header.typ = undefined;
  } else if (shape === 'okta') {
    delete payload.client_id;
    payload.cid = clientId;
    delete payload.scope;
    payload.scp = scopes;
    if (user) payload.uid = `00u-${user}`;
    if (user) payload.groups = account(user).groups || [];
  } else if (shape === 'entra') {
    delete payload.client_id;
    delete payload.scope;
    payload.azp = clientId;
    payload.tid = config.tenant_id;
    payload.ver = '2.0';
    if (user) {
      payload.scp = scopes.join(' ');
      payload.oid = account(user).oid || `oid-${user}`;
      if (account(user).groups) payload.groups = account(user).groups;
    } else {
      payload.roles = scopes;
      payload.oid = `sp-${clientId}`;
    }
    header.typ = 'JWT';
  }
}

const provider = new Provider(issuer, {
  jwks: { keys: config.keys },
  clients: config.clients.map(({ shape, ...client }) => client),
  cookies: { keys: ['authorizer-tests-only'] },
  scopes: ['openid', 'email', 'offline_access'],
  claims: { openid: ['sub', 'token_use', 'cognito:username'], email: ['email'] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      useGrantedResource: () => true,
      getResourceServerInfo(ctx, indicator) {
        const server = config.resources[indicator];
        if (!server) throw new Provider.errors.InvalidTarget();
        return {
          scope: server.scope,
          audience: indicator,
          accessTokenFormat: 'jwt',
          accessTokenTTL: server.ttl || 300,
          jwt: { sign: { alg: server.alg || 'RS256' } },
        };
      },
    },
  },
  formats: {
    customizers: {
      jwt(ctx, token, structured) {
        structured.header = structured.header || {};
        reshapeAccessToken(shapes[token.clientId], structured.payload, structured.header);
      },
    },
  },
  async findAccount(ctx, id) {
    const shape = shapes[ctx.oidc.client?.clientId];
    return {
      accountId: id,
      async claims(use) {
        const claims = { sub: id, email: account(id).email };
        if (shape === 'cognito' && use === 'id_token') {
          claims.token_use = 'id';
          claims['cognito:username'] = id;
        }
        return claims;
      },
    };
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  pkce: { required: () => false },
  ttl: { IdToken: 300, AccessToken: 300, ClientCredentials: 300 },
});

// Programmatic login and consent: the test's browser is an HTTP client following redirects.
provider.use(async (ctx, next) => {
  const match = /^\/interaction\/([\w-]+)$/.exec(ctx.path);
  if (!match || ctx.method !== 'GET') return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const accountId = details.params.login_hint || 'ada';
  let result;
  if (details.prompt.name === 'login') {
    result = { login: { accountId } };
  } else {
    const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = details.prompt.details;
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
    if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
    if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missingResourceScopes || {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    result = { consent: { grantId: await grant.save() } };
  }
  ctx.redirect(await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: true }));
});

provider.on('server_error', (ctx, error) => console.error('server_error', error));

const server = provider.listen(config.port, '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
