import { httpRouter } from "convex/server";
import { httpAction } from "./_generated/server";
import { api } from "./_generated/api";

const http = httpRouter();

http.route({
  path: "/hello",
  method: "GET",
  handler: httpAction(async (_ctx, request) => {
    const name = new URL(request.url).searchParams.get("name");
    return new Response(`hello ${name}`, { status: 200, headers: { "content-type": "text/plain" } });
  }),
});

// Any path under `/messages/`: the body becomes a message of the channel the path names.
http.route({
  pathPrefix: "/messages/",
  method: "POST",
  handler: httpAction(async (ctx, request) => {
    const channel = new URL(request.url).pathname.slice("/messages/".length);
    const body = await request.text();
    const id = await ctx.runMutation(api.messages.send, { channel, body, n: 0 });
    return new Response(JSON.stringify({ id, channel, body }), {
      status: 201,
      headers: { "content-type": "application/json", "x-method": request.method },
    });
  }),
});

// The deployment's variable the query string names, as the HTTP action saw it when it started.
http.route({
  path: "/env",
  method: "GET",
  handler: httpAction(async (_ctx, request) => {
    const name = new URL(request.url).searchParams.get("name") ?? "";
    return new Response(process.env[name] ?? "(unset)", { status: 200 });
  }),
});

export default http;
