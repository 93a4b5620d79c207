export default {
  providers: [{ domain: process.env.AUTH_ISSUER, applicationID: "notes-app" }],
};
