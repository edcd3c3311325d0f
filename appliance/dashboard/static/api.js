// The API client: the token (sessionStorage only, sent as a bearer header, never in a URL), JSON calls,
// and the event stream read with fetch (EventSource cannot send a header).

const TOKEN_KEY = "savd.token";

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  forget: () => sessionStorage.removeItem(TOKEN_KEY),
};

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// API paths are relative to the page (/dashboard/ -> /api/v1/...), so a proxy prefix works too.
export function apiUrl(path, params) {
  const url = new URL(`..${path}`, document.baseURI);
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== "") url.searchParams.set(key, value);
  }
  return url;
}

function headers(extra) {
  const out = { Accept: "application/json", ...extra };
  const secret = token.get();
  if (secret) out.Authorization = `Bearer ${secret}`;
  return out;
}

export async function api(path, { method = "GET", params, body } = {}) {
  const init = { method, headers: headers(), cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(apiUrl(path, params), init);
  const doc = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, doc?.message || `${response.status} ${response.statusText}`);
  return doc;
}

// Server-sent events from `path`: onEvent({event, id, data}) per event until the stream ends or `signal`
// aborts. Resolves false when savd has no such stream (404/405), true when it ended; throws otherwise.
export async function stream(path, onEvent, signal, lastId) {
  const extra = { Accept: "text/event-stream" };
  if (lastId) extra["Last-Event-ID"] = lastId;
  const response = await fetch(apiUrl(path), { headers: headers(extra), cache: "no-store", signal });
  if (response.status === 404 || response.status === 405) return false;
  if (!response.ok || !response.body) throw new ApiError(response.status, `event stream: ${response.status}`);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return true;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const message = parseBlock(block);
      if (message) onEvent(message);
    }
  }
}

function parseBlock(block) {
  const message = { event: "message", id: "", data: [] };
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue; // a comment (keep-alive)
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "data") message.data.push(value);
    else if (field === "event") message.event = value;
    else if (field === "id") message.id = value;
  }
  if (!message.data.length) return null;
  const text = message.data.join("\n");
  try {
    message.data = JSON.parse(text);
  } catch {
    message.data = text;
  }
  return message;
}
