import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { ForbiddenError } from '@civildiy/common';
import { Profile, ProfileUpdate, Username } from '@civildiy/common/contracts';
import type { Database } from '@civildiy/common/db';
import { requireUser, type FastifyPluginAsyncZod } from '@civildiy/common/service';
import { findProfileByUsername, getProfile, saveOwnProfile, type ExpectedVersion } from './profiles.ts';
import type * as schema from './db/schema.ts';

/** `If-Match`: the version as a number, as an entity tag (`"3"`), or `*`. */
const IfMatch = z
  .string()
  .regex(/^(\*|\d{1,9}|"\d{1,9}")$/, 'a profile version, e.g. 3 or "3", or *')
  .describe('Only apply the change if the profile is still at this version (its ETag); otherwise 412.');
const EditHeaders = z.object({ 'if-match': IfMatch.optional() });
const protectedRoute = { security: [{ bearerAuth: [] }] };
const errorCodes = (codes: string) => `Errors: ${codes}.`;

function expectedVersion(header: string | undefined): ExpectedVersion | undefined {
  if (header === undefined) return undefined;
  return header === '*' ? '*' : Number(header.replaceAll('"', ''));
}

function withEtag(reply: FastifyReply, profile: Profile): Profile {
  reply.header('etag', `"${profile.version}"`);
  return profile;
}

/** Every HTTP route of profile-service. */
export function profilesApi(deps: { db: Database<typeof schema> }): FastifyPluginAsyncZod {
  async function saveOwn(request: FastifyRequest & { body: ProfileUpdate; headers: { 'if-match'?: string } }, reply: FastifyReply) {
    const user = requireUser(request);
    const { profile } = await saveOwnProfile(deps.db, user, request.body, expectedVersion(request.headers['if-match']));
    return withEtag(reply, profile);
  }

  return async (app) => {
    app.get(
      '/profiles/me',
      {
        onRequest: app.authenticate,
        schema: {
          ...protectedRoute,
          tags: ['profiles'],
          summary: 'My profile',
          description: `Created shortly after registration. ${errorCodes('401, 404 profiles.not_found')}`,
          response: { 200: Profile },
        },
      },
      async (request, reply) => withEtag(reply, await getProfile(deps.db, requireUser(request).id)),
    );

    app.put(
      '/profiles/me',
      {
        onRequest: app.authenticate,
        schema: {
          ...protectedRoute,
          tags: ['profiles'],
          summary: 'Replace my display name, bio, location, skills and avatar',
          description:
            'Omitted optional fields are reset. A change bumps `version` and publishes `profile.updated`; the same values again change nothing. ' +
            errorCodes('400 validation_failed, 401, 409 profiles.username_taken, 412 profiles.version_mismatch'),
          headers: EditHeaders,
          body: ProfileUpdate,
          response: { 200: Profile },
        },
      },
      saveOwn,
    );

    app.get(
      '/profiles/:userId',
      {
        schema: {
          tags: ['profiles'],
          summary: "A user's profile",
          description: errorCodes('400 validation_failed, 404 profiles.not_found'),
          params: z.object({ userId: z.uuid() }),
          response: { 200: Profile },
        },
      },
      async (request, reply) => withEtag(reply, await getProfile(deps.db, request.params.userId)),
    );

    app.put(
      '/profiles/:userId',
      {
        onRequest: app.authenticate,
        schema: {
          ...protectedRoute,
          tags: ['profiles'],
          summary: 'Replace my profile, addressed by my user id',
          description: `The same as \`PUT /profiles/me\`; another user's id is refused. ${errorCodes('403 profiles.forbidden, and those of PUT /profiles/me')}`,
          headers: EditHeaders,
          params: z.object({ userId: z.uuid() }),
          body: ProfileUpdate,
          response: { 200: Profile },
        },
      },
      async (request, reply) => {
        if (request.params.userId !== requireUser(request).id) {
          throw new ForbiddenError('Only the owner may edit a profile', 'profiles.forbidden');
        }
        return saveOwn(request, reply);
      },
    );

    app.get(
      '/profiles',
      {
        schema: {
          tags: ['profiles'],
          summary: 'Find a profile by username (case-insensitive)',
          description: errorCodes('400 validation_failed'),
          querystring: z.object({ username: Username }),
          response: { 200: z.object({ items: z.array(Profile).max(1) }) },
        },
      },
      async (request) => {
        const profile = await findProfileByUsername(deps.db, request.query.username);
        return { items: profile ? [profile] : [] };
      },
    );
  };
}
