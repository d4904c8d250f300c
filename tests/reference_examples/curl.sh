# Start video generation
curl -X POST http://localhost:8787/v1/video/generations \
  -H "Authorization: Bearer YOUR_API_KEY" \
  -H "Content-Type: application/json" \
  -H "X-App-ID: your-app-id" \
  -d '{
    "model": "google/veo-3.0-generate-preview",
    "prompt": "A cinematic shot of a majestic lion in the savannah.",
    "parameters": {
      "aspectRatio": "16:9",
      "negativePrompt": "cartoon, drawing, low quality"
    }
  }'

# Check status (replace with actual operation ID)
curl -X GET http://localhost:8787/v1/video/generations/video-op:user123:1703123456789 \
  -H "Authorization: Bearer YOUR_API_KEY" \
  -H "X-App-ID: your-app-id"
