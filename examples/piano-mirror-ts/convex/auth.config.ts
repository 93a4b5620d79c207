// Accepts the tokens `POST /auth/dev` signs (http.ts), verified with the public key the deployment
// serves itself at /.well-known/jwks.json on its site URL.
import { DEV_AUTH_AUDIENCE, DEV_AUTH_ISSUER } from "./lib/devAuthClaims";

export default {
  providers: [
    {
      type: "customJwt",
      issuer: DEV_AUTH_ISSUER,
      jwks: `${process.env.CONVEX_SITE_URL}/.well-known/jwks.json`,
      algorithm: "ES256",
      applicationID: DEV_AUTH_AUDIENCE,
    },
  ],
};
