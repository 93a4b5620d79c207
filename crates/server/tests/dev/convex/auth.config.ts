// The test's issuer, from the environment `livebase dev` runs in.
export default {
  providers: [{ type: "customJwt", issuer: process.env.TEST_ISSUER, jwks: process.env.TEST_JWKS, algorithm: "RS256" }],
};
