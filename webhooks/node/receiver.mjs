// Reference receiver for lunos-events webhooks: plain node:http + the `standardwebhooks` package.
//
//   WEBHOOK_SECRET=whsec_... PORT=8788 node receiver.mjs
//
// What a receiver must do, in order:
//   1. read the RAW body (verify the exact bytes that were signed, never re-serialised JSON);
//   2. verify the signature and the timestamp (the library refuses anything older or newer than
//      5 minutes, which stops replays); answer 400 on failure;
//   3. de-duplicate on `webhook-id`: a message may arrive more than once (retries, a crash after
//      sending), always with the same id;
//   4. answer 2xx at once and do the real work afterwards: a slow answer (15 s) counts as a failure
//      and is retried.
// WEBHOOK_SECRET may hold several space-separated secrets while you rotate on your side.
import http from "node:http";
import { Webhook, WebhookVerificationError } from "standardwebhooks";

const MAX_BODY_BYTES = 1024 * 1024;
const SEEN_LIMIT = 100_000;

const verifiers = (process.env.WEBHOOK_SECRET || "")
  .split(" ")
  .filter(Boolean)
  .map((secret) => new Webhook(secret));
if (verifiers.length === 0) {
  console.error("set WEBHOOK_SECRET to the endpoint's whsec_... secret");
  process.exit(2);
}

// In memory for the example; a real backend keeps processed ids in its database (unique key).
const seen = new Set();
function firstTime(id) {
  if (seen.has(id)) return false;
  seen.add(id);
  if (seen.size > SEEN_LIMIT) seen.delete(seen.values().next().value);
  return true;
}

function verify(body, headers) {
  let lastError;
  for (const webhook of verifiers) {
    try {
      return webhook.verify(body, headers);
    } catch (error) {
      if (!(error instanceof WebhookVerificationError)) throw error;
      lastError = error;
    }
  }
  throw lastError;
}

// Your work goes here. It runs after the answer was sent.
function handleEvent(id, event) {
  console.log(JSON.stringify({ id, type: event.type, timestamp: event.timestamp, data: event.data }));
}

function answer(response, status, body) {
  response.writeHead(status, { "content-type": "application/json" });
  response.end(JSON.stringify(body));
}

const server = http.createServer((request, response) => {
  if (request.method !== "POST") return answer(response, 405, { error: "POST only" });
  const chunks = [];
  let size = 0;
  request.on("data", (chunk) => {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) {
      answer(response, 413, { error: "body too large" });
      request.destroy();
    } else {
      chunks.push(chunk);
    }
  });
  request.on("end", () => {
    if (response.writableEnded) return;
    const body = Buffer.concat(chunks);
    let event;
    try {
      event = verify(body, request.headers);
    } catch (error) {
      return answer(response, 400, { error: `invalid webhook: ${error.message}` });
    }
    const id = request.headers["webhook-id"];
    if (!firstTime(id)) return answer(response, 200, { duplicate: true });
    answer(response, 200, { received: true });
    setImmediate(() => handleEvent(id, event));
  });
});

const port = Number(process.env.PORT || 8788);
const host = process.env.HOST || "127.0.0.1";
server.listen(port, host, () => console.error(`listening on http://${host}:${port}`));
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => server.close(() => process.exit(0)));
