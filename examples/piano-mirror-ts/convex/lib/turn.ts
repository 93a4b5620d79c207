// TURN credentials for `signaling.turnConfig`: which provider the deployment's environment variables
// configure, the request that mints credentials (Cloudflare Realtime's TURN API), and the ICE servers in
// its response.
import { MAX_ICE_SERVERS, MAX_TURN_RESPONSE_BYTES, TURN_CREDENTIAL_TTL_SECONDS } from "./limits";

/** The provider's key id (the `<TOKEN_ID>` of its URL). */
export const TURN_TOKEN_ID_VAR = "CLOUDFLARE_TURN_TOKEN_ID";
/** The provider's API token, sent as a bearer token. */
export const TURN_API_TOKEN_VAR = "CLOUDFLARE_TURN_API_TOKEN";
/** Overrides the provider's base URL (tests point it at a local fake). */
export const TURN_PROVIDER_URL_VAR = "TURN_PROVIDER_URL";
export const DEFAULT_TURN_PROVIDER_URL = "https://rtc.live.cloudflare.com";
/** The STUN server of the fallback. */
export const FALLBACK_STUN_URL = "stun:stun.l.google.com:19302";

/** An ICE server as `RTCPeerConnection` takes it. */
export type IceServer = { urls: string[]; username?: string; credential?: string };
export type IceConfig = { iceServers: IceServer[] };

export type TurnProvider = { tokenId: string; apiToken: string; baseUrl: string };

/** The provider the environment configures: none unless both the token id and the API token are set. */
export function turnProviderFromEnv(): TurnProvider | null {
  const set = (name: string) => {
    const value = process.env[name]?.trim();
    return value === undefined || value === "" ? null : value;
  };
  const tokenId = set(TURN_TOKEN_ID_VAR);
  const apiToken = set(TURN_API_TOKEN_VAR);
  if (tokenId === null || apiToken === null) return null;
  const baseUrl = (set(TURN_PROVIDER_URL_VAR) ?? DEFAULT_TURN_PROVIDER_URL).replace(/\/+$/, "");
  return { tokenId, apiToken, baseUrl };
}

export function stunOnly(): IceConfig {
  return { iceServers: [{ urls: [FALLBACK_STUN_URL] }] };
}

/** Cloudflare's `POST /v1/turn/keys/<TOKEN_ID>/credentials/generate` with `{"ttl": seconds}`. */
export async function mintCredentials(provider: TurnProvider): Promise<IceConfig> {
  // The token id must stay one segment of the URL's path.
  if (!/^[A-Za-z0-9_-]+$/.test(provider.tokenId)) {
    throw new Error(`${TURN_TOKEN_ID_VAR} may hold only letters, digits, \`-\` and \`_\``);
  }
  const response = await fetch(`${provider.baseUrl}/v1/turn/keys/${provider.tokenId}/credentials/generate`, {
    method: "POST",
    headers: { Authorization: `Bearer ${provider.apiToken}`, "Content-Type": "application/json" },
    body: JSON.stringify({ ttl: TURN_CREDENTIAL_TTL_SECONDS }),
  });
  const body = await response.text();
  if (!response.ok) throw new Error(`the TURN provider answered ${response.status}: ${body.slice(0, 200)}`);
  return iceServersFromResponse(body);
}

const asList = <T>(oneOrMany: T | T[]): T[] => (Array.isArray(oneOrMany) ? oneOrMany : [oneOrMany]);

/**
 * `{iceServers: [...]}` from the provider's response: one ICE server or a list of them (Cloudflare's
 * `generate` and `generate-ice-servers` answers), each with `urls` (one or many), `username` and
 * `credential`.
 */
export function iceServersFromResponse(body: string): IceConfig {
  const bytes = new TextEncoder().encode(body).length;
  if (bytes > MAX_TURN_RESPONSE_BYTES) {
    throw new Error(`the TURN provider's response has ${bytes} bytes, more than the ${MAX_TURN_RESPONSE_BYTES} accepted`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    parsed = null;
  }
  const servers = (parsed as { iceServers?: unknown } | null)?.iceServers;
  if (servers === undefined || servers === null || typeof servers !== "object") {
    throw new Error('the TURN provider\'s response is not `{"iceServers": ...}`');
  }
  const list = asList(servers) as { urls?: unknown; username?: unknown; credential?: unknown }[];
  if (list.length === 0 || list.length > MAX_ICE_SERVERS) {
    throw new Error(`the TURN provider returned ${list.length} ICE servers, not 1 to ${MAX_ICE_SERVERS}`);
  }
  return {
    iceServers: list.map((server) => {
      const urls = server.urls === undefined ? [] : asList(server.urls);
      const known = (url: unknown) =>
        typeof url === "string" && ["stun:", "turn:", "turns:"].some((scheme) => url.startsWith(scheme));
      if (urls.length === 0 || !urls.every(known)) {
        throw new Error(
          `the TURN provider returned an ICE server with URLs ${JSON.stringify(urls)}, not stun:/turn:/turns: ones`,
        );
      }
      const iceServer: IceServer = { urls: urls as string[] };
      if (typeof server.username === "string") iceServer.username = server.username;
      if (typeof server.credential === "string") iceServer.credential = server.credential;
      return iceServer;
    }),
  };
}
