// Piano Mirror's web page, two views chosen by the query string:
// - `?view=students&center=<id>`: a center's students, newest first within each status, loaded page
//   by page with `usePaginatedQuery` and updated live;
// - `?view=room&name=<user>`: sign in through the site's `POST /auth/dev`, create or join a room by its
//   code, connect to the other peer over WebRTC through `signaling:*`, and mirror piano keys over an
//   RTCDataChannel.
// The Livebase API's URL is the `api` parameter if given, else the one the demo binary writes into the
// page's `<meta name="livebase-api">`; `/auth/dev` is on the page's own origin (the demo's site port,
// which serves this page). Each rendered pagination status is appended to `window.statusLog` for the
// tests. `demo/web/build.sh` bundles this file into `demo/web/dist`, which the binary embeds.
import { ConvexProvider, ConvexReactClient, useConvex, useMutation, usePaginatedQuery, useQuery } from "convex/react";
import { anyApi } from "convex/server";
import { useCallback, useEffect, useRef, useState } from "react";
import { createRoot } from "react-dom/client";

const params = new URLSearchParams(window.location.search);
const API_URL = params.get("api") ?? document.querySelector('meta[name="livebase-api"]')?.content;
const client = new ConvexReactClient(API_URL, { skipConvexDeploymentUrlCheck: true });
const PAGE_SIZE = Number(params.get("pageSize") ?? "10");
// One octave, C4 to B4, as MIDI note numbers.
const KEYS = [
  { note: 60, label: "C" },
  { note: 61, label: "C♯" },
  { note: 62, label: "D" },
  { note: 63, label: "D♯" },
  { note: 64, label: "E" },
  { note: 65, label: "F" },
  { note: 66, label: "F♯" },
  { note: 67, label: "G" },
  { note: 68, label: "G♯" },
  { note: 69, label: "A" },
  { note: 70, label: "A♯" },
  { note: 71, label: "B" },
];
// How long a key mirrored from the other side stays lit.
const LIT_MS = 1_500;

window.statusLog = [];

// The center of the query string, else the first one.
function Students() {
  const centers = useQuery(anyApi.centers.list);
  const center = centers?.find((candidate) => candidate._id === params.get("center")) ?? centers?.[0];
  if (center === undefined) return <p>{centers === undefined ? "Loading centers…" : "There are no centers yet."}</p>;
  return <StudentList center={center} />;
}

function StudentList({ center }) {
  const { results, status, loadMore } = usePaginatedQuery(
    anyApi.students.listByCenter,
    { centerId: center._id },
    { initialNumItems: PAGE_SIZE },
  );
  useEffect(() => {
    window.statusLog.push(status);
  }, [status]);
  return (
    <main>
      <h1>Students of {center.name}</h1>
      <p>
        Status: <span id="status">{status}</span> · <span id="count">{results.length}</span> shown
      </p>
      <ol id="students">
        {results.map((student) => (
          <li key={student._id} data-id={student._id}>
            {student.name} <small className={`status ${student.status}`}>{student.status}</small>
          </li>
        ))}
      </ol>
      <button id="load-more" type="button" disabled={status !== "CanLoadMore"} onClick={() => loadMore(PAGE_SIZE)}>
        Load more
      </button>
    </main>
  );
}

async function signIn(name) {
  const response = await fetch("/auth/dev", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name }),
  });
  const body = await response.json();
  if (!response.ok) throw new Error(`Sign-in refused: ${body.message}`);
  return body;
}

// A WebRTC connection to the other peer of the room. The peer that joined (`offerer`) makes the
// offer, the host answers whoever sent it; both send ICE candidates as they find them. Signaling
// messages arrive through the live inbox query and are handled one at a time, in the order sent.
function usePeerConnection({ roomId, other, offerer, iceConfig, onKey }) {
  const convex = useConvex();
  const [since, setSince] = useState(0);
  const inbox = useQuery(anyApi.signaling.inboxFor, roomId === null ? "skip" : { roomId, since });
  const [channelState, setChannelState] = useState("closed");
  const connection = useRef(null);
  const channel = useRef(null);
  const remoteUser = useRef(null);
  const handled = useRef(new Set());
  const queue = useRef(Promise.resolve());

  const send = useCallback(
    (type, payload) =>
      convex.mutation(anyApi.signaling.sendMessage, { roomId, toUserId: remoteUser.current, type, payload }),
    [convex, roomId],
  );
  // A failed step is reported (the tests fail on console errors) and the next one still runs.
  const enqueue = useCallback((step) => {
    queue.current = queue.current.then(step).catch((why) => console.error(`WebRTC signaling failed: ${why}`));
  }, []);

  const attach = useCallback(
    (dataChannel) => {
      channel.current = dataChannel;
      dataChannel.onopen = () => setChannelState("open");
      dataChannel.onclose = () => setChannelState("closed");
      // Only the keys of the keyboard light up, whatever the other side sends.
      dataChannel.onmessage = (event) => {
        const note = Number(event.data.match(/^\{"note":(\d+)\}$/)?.[1]);
        if (KEYS.some((key) => key.note === note)) onKey(note);
      };
    },
    [onKey],
  );

  const connectionFor = useCallback(() => {
    if (connection.current === null) {
      const peerConnection = new RTCPeerConnection(iceConfig);
      peerConnection.onicecandidate = ({ candidate }) => {
        if (candidate !== null) send("ice", candidate.toJSON());
      };
      peerConnection.ondatachannel = ({ channel: dataChannel }) => attach(dataChannel);
      connection.current = peerConnection;
    }
    return connection.current;
  }, [iceConfig, send, attach]);

  useEffect(() => {
    if (other === null || iceConfig === null || !offerer || connection.current !== null) return;
    remoteUser.current = other;
    const peerConnection = connectionFor();
    attach(peerConnection.createDataChannel("piano"));
    enqueue(async () => {
      await peerConnection.setLocalDescription(await peerConnection.createOffer());
      await send("offer", { type: "offer", sdp: peerConnection.localDescription.sdp });
    });
  }, [other, iceConfig, offerer, connectionFor, attach, send, enqueue]);

  useEffect(() => {
    if (inbox === undefined || iceConfig === null) return;
    for (const message of inbox) {
      if (handled.current.has(message._id)) continue;
      handled.current.add(message._id);
      enqueue(async () => {
        const peerConnection = connectionFor();
        if (message.type === "offer") {
          remoteUser.current = message.fromUserId;
          await peerConnection.setRemoteDescription(message.payload);
          await peerConnection.setLocalDescription(await peerConnection.createAnswer());
          await send("answer", { type: "answer", sdp: peerConnection.localDescription.sdp });
        } else if (message.type === "answer") {
          await peerConnection.setRemoteDescription(message.payload);
        } else {
          await peerConnection.addIceCandidate(message.payload);
        }
      });
    }
    if (inbox.length > 0) setSince(inbox[inbox.length - 1]._creationTime);
  }, [inbox, iceConfig, connectionFor, send, enqueue]);

  useEffect(() => () => connection.current?.close(), []);

  const press = useCallback((note) => {
    if (channel.current?.readyState === "open") channel.current.send(JSON.stringify({ note }));
  }, []);
  return { channelState, press };
}

function Room({ me, name }) {
  const convex = useConvex();
  const createRoom = useMutation(anyApi.rooms.create);
  const joinRoom = useMutation(anyApi.rooms.join);
  const [slug, setSlug] = useState(params.get("slug") ?? "");
  // `{roomId, host}` once in a room.
  const [entered, setEntered] = useState(null);
  const roomId = entered?.roomId ?? null;
  const [error, setError] = useState(null);
  const [iceConfig, setIceConfig] = useState(null);
  const [lit, setLit] = useState({});
  const peers = useQuery(anyApi.rooms.peers, roomId === null ? "skip" : { roomId });
  const other = peers?.find((peer) => peer.userId !== me)?.userId ?? null;

  useEffect(() => {
    convex.action(anyApi.signaling.turnConfig, {}).then(setIceConfig, (why) => setError(why.message));
  }, [convex]);

  const light = useCallback((note, side) => {
    setLit((current) => ({ ...current, [note]: side }));
    setTimeout(() => setLit((current) => ({ ...current, [note]: undefined })), LIT_MS);
  }, []);
  const onKey = useCallback((note) => light(note, "remote"), [light]);
  const offerer = entered?.host === false;
  const { channelState, press } = usePeerConnection({ roomId, other, offerer, iceConfig, onKey });

  const enter = async (host) => {
    setError(null);
    try {
      setEntered({ roomId: await (host ? createRoom : joinRoom)({ slug, displayName: name }), host });
    } catch (why) {
      setError(why.data?.message ?? why.message);
    }
  };

  return (
    <main>
      <h1>Piano Mirror</h1>
      <p>
        Signed in as <b id="me">{name}</b>
      </p>
      {roomId === null ? (
        <form onSubmit={(event) => event.preventDefault()}>
          <input id="slug" value={slug} placeholder="Room code" onChange={(event) => setSlug(event.target.value)} />
          <button id="create" type="button" onClick={() => enter(true)}>
            Create room
          </button>
          <button id="join" type="button" onClick={() => enter(false)}>
            Join room
          </button>
        </form>
      ) : (
        <p>
          Room <b id="room">{slug.toUpperCase()}</b> with{" "}
          <span id="peers">{(peers ?? []).map((peer) => peer.displayName).join(", ")}</span> · channel{" "}
          <span id="channel">{channelState}</span>
        </p>
      )}
      {error !== null && <p id="error">{error}</p>}
      <div id="keyboard" style={{ display: "flex", gap: 4 }}>
        {KEYS.map(({ note, label }) => (
          <button
            key={note}
            type="button"
            data-note={note}
            data-lit={lit[note] ?? ""}
            disabled={channelState !== "open"}
            onClick={() => {
              light(note, "local");
              press(note);
            }}
            style={{
              width: 40,
              height: 120,
              background: { remote: "#f5a623", local: "#7ed321" }[lit[note]] ?? (label.length > 1 ? "#222" : "#fff"),
              color: label.length > 1 ? "white" : "black",
            }}
          >
            {label}
          </button>
        ))}
      </div>
    </main>
  );
}

function SignedInRoom() {
  const name = params.get("name") ?? "Guest";
  const [me, setMe] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    signIn(name).then(
      ({ token, userId }) => {
        client.setAuth(async () => token);
        setMe(userId);
      },
      (why) => setError(why.message),
    );
  }, [name]);
  if (error !== null) return <p id="error">{error}</p>;
  return me === null ? <p>Signing in…</p> : <Room me={me} name={name} />;
}

function App() {
  return params.get("view") === "room" ? <SignedInRoom /> : <Students />;
}

createRoot(document.getElementById("root")).render(
  <ConvexProvider client={client}>
    <App />
  </ConvexProvider>,
);
