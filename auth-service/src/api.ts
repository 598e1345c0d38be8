import { Role, Username } from '@civildiy/common/contracts';
import { assertRole, bearerToken, requireUser, type App } from '@civildiy/common/service';
import type { RouteAccess } from '@civildiy/common/topology';
import { z } from 'zod';
import type { Accounts } from './accounts.ts';
import type { SigningKeys } from './signing-keys.ts';
import type { Tokens } from './tokens.ts';

const Email = z.string().trim().toLowerCase().pipe(z.email().max(254)).describe('an email address (compared case-insensitively)');
const Password = z.string().min(10).max(256).describe('10–256 characters');
const RefreshToken = z.string().min(1).max(512).describe('the opaque refresh token of the last login or refresh');
const DeviceToken = z
  .string()
  .max(4096)
  .optional()
  .describe(
    'the `deviceToken` of the last login, registration or refresh on this device. With a valid one of this account, failed logins ' +
      'are counted for this device alone: guessing from elsewhere cannot keep it out. Without one (or with an invalid, expired or ' +
      "another account's), each failure beyond a few makes the next login wait longer (429 with Retry-After)",
  );

const User = z.object({
  id: z.uuid(),
  email: z.string(),
  username: z.string(),
  createdAt: z.iso.datetime({ offset: true }),
  roles: z.array(Role).describe('the roles the account holds now (granted with `npm run -w auth-service role`); access tokens carry them from their issue on'),
});
const IssuedTokens = z.object({
  accessToken: z.string().describe('EdDSA JWT for `Authorization: Bearer`'),
  refreshToken: z.string().describe('single use: exchange it at /auth/refresh'),
  expiresIn: z.number().int().describe('seconds until the access token expires'),
  deviceToken: z
    .string()
    .describe('keep it on this device (it outlives logout) and send it as `deviceToken` with every login: it marks this device as known to the account'),
});
const Session = IssuedTokens.extend({ user: User });
const VerifyAccess = z
  .enum(['public', 'protected', 'operator'] as const satisfies readonly RouteAccess[])
  .default('protected')
  .describe("the access level of the proxy's route (`GatewayRoute.access`)");
const Jwks = z.object({
  keys: z.array(z.object({ kty: z.string(), crv: z.string(), x: z.string(), kid: z.string(), alg: z.string(), use: z.string() })),
});

/** The domain parts the routes call. */
export interface ApiDeps {
  accounts: Accounts;
  tokens: Tokens;
  keys: SigningKeys;
}

/** Every HTTP route of auth-service. */
export function registerApi(app: App, { accounts, tokens, keys }: ApiDeps): void {
  app.post(
    '/auth/register',
    {
      schema: {
        tags: ['auth'],
        summary: 'Create an account and log in',
        body: z.object({ email: Email, username: Username, password: Password }),
        response: { 201: Session },
      },
    },
    async (request, reply) => reply.status(201).send(await accounts.register(request.body)),
  );

  app.post(
    '/auth/login',
    {
      schema: {
        tags: ['auth'],
        summary: 'Log in with email or username',
        description:
          'Failed logins are throttled. With a valid `deviceToken` of the account, per device only (locked for a while after ' +
          'several failures). Without one, per client address, and per login name with a wait that doubles after each failure ' +
          'beyond a few and ends with a success. Over a limit: 429 `auth.too_many_attempts` with `Retry-After`; throttle store ' +
          'down: 503 `auth.throttle_unavailable`.',
        body: z.object({
          login: z.string().trim().min(1).max(254).describe('email or username'),
          password: z.string().min(1).max(256),
          deviceToken: DeviceToken,
        }),
        response: { 200: Session },
      },
    },
    async (request) => accounts.login(request.body, request.ip),
  );

  app.post(
    '/auth/refresh',
    {
      schema: {
        tags: ['auth'],
        summary: 'Exchange a refresh token for new tokens (the old one is used up)',
        body: z.object({ refreshToken: RefreshToken }),
        response: { 200: IssuedTokens },
      },
    },
    async (request) => tokens.rotate(request.body.refreshToken),
  );

  app.post(
    '/auth/logout',
    {
      schema: { tags: ['auth'], summary: "End the refresh token's session", body: z.object({ refreshToken: RefreshToken }) },
    },
    async (request, reply) => {
      await tokens.revokeFamily(request.body.refreshToken);
      return reply.status(204).send();
    },
  );

  app.get(
    '/auth/me',
    { onRequest: app.authenticate, schema: { tags: ['auth'], summary: 'The logged-in user', security: [{ bearerAuth: [] }], response: { 200: User } } },
    async (request) => accounts.get(requireUser(request).id),
  );

  app.get(
    '/auth/verify',
    {
      schema: {
        tags: ['auth'],
        summary: 'Forward authentication for an edge proxy (Traefik forwardAuth, Caddy forward_auth): 2xx lets the request through',
        description:
          'Answers for the access level of the route the proxy matched (`access`, as in the route table): 200 with `X-User-ID` and ' +
          '`X-Username` for the token\'s user, which the proxy copies onto the request it forwards. `public`: no token is 200 without ' +
          'them, a token that does not verify is 401. `protected` (default): a valid bearer token is required, else 401. `operator`: ' +
          'as `protected`, and 403 `auth.role_required` for a token without the `operator` role.',
        querystring: z.object({ access: VerifyAccess }),
        security: [{ bearerAuth: [] }],
        response: {
          200: z.object({
            userId: z.string().optional().describe("the token's user; absent for a request without a token on a public route"),
            username: z.string().optional(),
            roles: z.array(Role).describe("the token's roles"),
          }),
        },
      },
    },
    async (request, reply) => {
      const { access } = request.query;
      if (access === 'public' && bearerToken(request) === undefined) return { roles: [] };
      await app.authenticate(request, reply);
      const user = requireUser(request);
      if (access === 'operator') assertRole(user, 'operator');
      reply.header('x-user-id', user.id);
      if (user.username) reply.header('x-username', user.username);
      return { userId: user.id, ...(user.username ? { username: user.username } : {}), roles: user.roles };
    },
  );

  app.get(
    '/.well-known/jwks.json',
    { schema: { tags: ['auth'], summary: 'Public keys that verify access tokens', response: { 200: Jwks } } },
    async (_request, reply) => {
      reply.header('cache-control', 'public, max-age=300');
      return { keys: keys.publicJwks() as z.infer<typeof Jwks>['keys'] };
    },
  );
}
