// Start video generation
const response = await fetch("http://localhost:8787/v1/video/generations", {
  method: "POST",
  headers: {
    Authorization: "Bearer YOUR_API_KEY",
    "Content-Type": "application/json",
    "X-App-ID": "your-app-id",
  },
  body: JSON.stringify({
    model: "google/veo-3.0-generate-preview",
    prompt: "A cinematic shot of a majestic lion in the savannah.",
    parameters: {
      aspectRatio: "16:9",
      negativePrompt: "cartoon, drawing, low quality",
    },
    response_format: "mp4",
  }),
});

const result = await response.json();
console.log("Operation ID:", result.id);

// Poll for completion
const checkStatus = async (operationId) => {
  const statusResponse = await fetch(
    `http://localhost:8787/v1/video/generations/${operationId}`,
    {
      headers: {
        Authorization: "Bearer YOUR_API_KEY",
        "X-App-ID": "your-app-id",
      },
    }
  );

  const status = await statusResponse.json();

  if (status.status === "completed") {
    console.log("Video URL:", status.video_url);
    return status.video_url;
  } else {
    console.log("Still processing...");
    // Wait 10 seconds before checking again
    setTimeout(() => checkStatus(operationId), 10000);
  }
};

checkStatus(result.id);
