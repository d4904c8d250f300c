// The official @lunos/client called as the reference document's JavaScript example calls it,
// against the server at LUNOS_BASE_URL (its public `baseUrl` option; nothing else is changed).
// Prints one JSON line per step for tests/test_lunos_npm_client.py.
import { LunosClient } from "@lunos/client";

const POLL_MS = Number(process.env.POLL_MS || 10000);
const MAX_WAIT_MS = Number(process.env.MAX_WAIT_MS || 300000);
const report = (step, body) => console.log(JSON.stringify({ step, body }));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Initialize the client
const client = new LunosClient({
  apiKey: process.env.LUNOS_API_KEY,
  appId: "your-app-id",
  baseUrl: process.env.LUNOS_BASE_URL,
});

// Basic video generation
const response = await client.video.generateVideo({
  model: "google/veo-3.0-generate-preview",
  prompt: "A cinematic shot of a majestic lion in the savannah.",
  parameters: {
    aspectRatio: "16:9",
    negativePrompt: "cartoon, drawing, low quality",
  },
  response_format: "mp4",
  appId: "my-video-app",
});
report("generateVideo", response);

// Check video generation status, until it is completed (each answer reported).
const deadline = Date.now() + MAX_WAIT_MS;
let status = await client.video.getVideoStatus(response.id, "my-video-app");
report("getVideoStatus", status);
while (status.status !== "completed" && status.status !== "failed" && Date.now() < deadline) {
  await sleep(POLL_MS);
  status = await client.video.getVideoStatus(response.id, "my-video-app");
  report("getVideoStatus", status);
}

// Generate and wait for completion
const result = await client.video.generateAndWait(
  {
    prompt: "A beautiful sunset over mountains with birds flying",
    aspectRatio: "16:9",
    negativePrompt: "cartoon, animation, low quality",
  },
  POLL_MS,
  MAX_WAIT_MS,
);
report("generateAndWait", result);
