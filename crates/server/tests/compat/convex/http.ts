// HTTP routes: an exact path, a path prefix, each method, and an action writing through a mutation.
import { httpRouter } from "convex/server";
import { httpAction } from "./_generated/server";
import { api } from "./_generated/api";

const http = httpRouter();

http.route({
  path: "/hello",
  method: "GET",
  handler: httpAction(async (_ctx, request) => {
    const name = new URL(request.url).searchParams.get("name") ?? "world";
    return new Response(`hello ${name}`, { status: 200, headers: { "content-type": "text/plain" } });
  }),
});

http.route({
  path: "/echo",
  method: "POST",
  handler: httpAction(async (_ctx, request) => {
    const body = await request.json();
    return new Response(JSON.stringify({ got: body, compat: request.headers.get("x-compat") }), {
      status: 200,
      headers: { "content-type": "application/json" },
    });
  }),
});

http.route({
  pathPrefix: "/notes/",
  method: "PUT",
  handler: httpAction(async (ctx, request) => {
    const author = new URL(request.url).pathname.slice("/notes/".length);
    const text = await request.text();
    const id = await ctx.runMutation(api.db.add, { author, text, tag: "http", n: 0 });
    return new Response(JSON.stringify({ id }), { status: 201, headers: { "content-type": "application/json" } });
  }),
});

export default http;
