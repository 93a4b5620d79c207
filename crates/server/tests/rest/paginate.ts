// Seed 001's TypeScript client, as the seed gives it; only the deployment's address comes from
// the environment (LIVEBASE_URL) instead of `https://<your-deployment>.convex.site`, and so does
// the key (CC_KEY, as in the seed's Python client).
const base = process.env.LIVEBASE_URL!;
const key = process.env.CC_KEY!;

async function* paginate<T>(path: string, key: string) {
  let cursor: string | null = null;
  do {
    const url = new URL(`${base}${path}`);
    url.searchParams.set("limit", "100");
    if (cursor) url.searchParams.set("cursor", cursor);

    const res = await fetch(url, {
      headers: { "Authorization": `Bearer ${key}` },
    });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);

    const body = await res.json() as {
      data: T[];
      nextCursor: string | null;
      hasMore: boolean;
    };

    for (const item of body.data) yield item;
    cursor = body.hasMore ? body.nextCursor : null;
  } while (cursor);
}

// Usage
for await (const run of paginate<{ id: string }>("/api/v1/runs", key)) {
  console.log(run.id);
}
