// The built-in app's messages, newest first, loaded page by page with `usePaginatedQuery`, plus the
// total from `useQuery`. Query string: `livebase` (the server's URL), `pageSize`.
// Each rendered status change is appended to `window.statusLog` for the test to check.
import { ConvexProvider, ConvexReactClient, usePaginatedQuery, useQuery } from "convex/react";
import { anyApi } from "convex/server";
import { useEffect } from "react";
import { createRoot } from "react-dom/client";

const params = new URLSearchParams(window.location.search);
const pageSize = Number(params.get("pageSize") ?? "5");
const client = new ConvexReactClient(params.get("livebase"), { skipConvexDeploymentUrlCheck: true });

window.statusLog = [];

function Messages() {
  const all = useQuery(anyApi.messages.list);
  const { results, status, loadMore } = usePaginatedQuery(anyApi.messages.page, {}, { initialNumItems: pageSize });
  useEffect(() => {
    window.statusLog.push(status);
  }, [status]);
  return (
    <main>
      <h1>Messages</h1>
      <p id="total">{all === undefined ? "counting…" : `${all.length} messages in total`}</p>
      <p>
        Status: <span id="status">{status}</span>
      </p>
      <ol id="messages">
        {results.map((message) => (
          <li key={message._id} data-id={message._id}>
            {message.body}
          </li>
        ))}
      </ol>
      <button id="load-more" type="button" disabled={status !== "CanLoadMore"} onClick={() => loadMore(pageSize)}>
        Load more
      </button>
    </main>
  );
}

createRoot(document.getElementById("root")).render(
  <ConvexProvider client={client}>
    <Messages />
  </ConvexProvider>,
);
