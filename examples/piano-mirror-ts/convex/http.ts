// The app's HTTP routes (on the site port, and under /http/ on the API port):
// - `POST /auth/dev {"name"}` signs the caller in as that user (created on first use) and answers
//   `{"token", "userId"}`: an ES256 JWT whose subject is the user's id. Anyone can sign in as anyone:
//   this is for demos; production apps configure a real identity provider in auth.config.ts.
// - `GET /.well-known/jwks.json`: the public key of those tokens, which auth.config.ts points the
//   deployment's custom JWT provider at.
import { httpRouter } from "convex/server";
import { ConvexError } from "convex/values";
import { internal } from "./_generated/api";
import { httpAction } from "./_generated/server";
import { deploymentKey } from "./devAuth";
import { DEV_AUTH_AUDIENCE, DEV_AUTH_ISSUER } from "./lib/devAuthClaims";
import { publicJwk, signJwt } from "./lib/es256";
import { DEV_TOKEN_LIFETIME_SECONDS, MAX_SIGN_IN_BODY_BYTES } from "./lib/limits";

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

/** The `name` of a sign-in request's body, or why there is none. */
function signInName(body: string): { name: string } | { refused: string } {
  if (new TextEncoder().encode(body).length > MAX_SIGN_IN_BODY_BYTES) {
    return { refused: `The body is over ${MAX_SIGN_IN_BODY_BYTES} bytes (MAX_SIGN_IN_BODY_BYTES)` };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return { refused: 'The body must be JSON: {"name": string}' };
  }
  const name = (parsed as { name?: unknown } | null)?.name;
  return typeof name === "string" ? { name } : { refused: "`name` is required and must be a string" };
}

const signIn = httpAction(async (ctx, request) => {
  const body = signInName(await request.text());
  if ("refused" in body) return json(400, { code: "INVALID", message: body.refused });
  let userId: string;
  try {
    userId = await ctx.runMutation(internal.users.signIn, { name: body.name });
  } catch (error) {
    if (!(error instanceof ConvexError)) throw error;
    return json(400, { code: "INVALID", message: error.data.message, data: error.data });
  }
  const now = Math.floor(Date.now() / 1000);
  const token = signJwt(await deploymentKey(ctx), {
    iss: DEV_AUTH_ISSUER,
    aud: DEV_AUTH_AUDIENCE,
    sub: userId,
    name: body.name,
    iat: now,
    exp: now + DEV_TOKEN_LIFETIME_SECONDS,
  });
  return json(200, { token, userId });
});

const jwks = httpAction(async (ctx) => json(200, { keys: [publicJwk(await deploymentKey(ctx))] }));

const http = httpRouter();
http.route({ path: "/auth/dev", method: "POST", handler: signIn });
http.route({ path: "/.well-known/jwks.json", method: "GET", handler: jwks });
export default http;
