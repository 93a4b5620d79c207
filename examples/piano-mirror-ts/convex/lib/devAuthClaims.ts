// Who signs the dev sign-in's tokens and for whom: http.ts writes these claims, auth.config.ts checks them.

/** The `iss` of the tokens `POST /auth/dev` signs. */
export const DEV_AUTH_ISSUER = "https://piano-mirror.invalid/dev-auth";
/** Their `aud`, the provider's application id. */
export const DEV_AUTH_AUDIENCE = "piano-mirror";
