# Seed 001's Python client, as the seed gives it; only the deployment's address comes from the
# environment (LIVEBASE_URL) instead of `https://<your-deployment>.convex.site`.
import os, requests

def paginate(path: str, key: str, limit: int = 100):
    cursor = None
    base = os.environ["LIVEBASE_URL"]
    while True:
        params = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        r = requests.get(
            f"{base}{path}",
            headers={"Authorization": f"Bearer {key}"},
            params=params,
            timeout=30,
        )
        r.raise_for_status()
        body = r.json()
        for item in body["data"]:
            yield item
        if not body.get("hasMore"):
            return
        cursor = body["nextCursor"]

for run in paginate("/api/v1/runs", os.environ["CC_KEY"]):
    print(run["id"])
