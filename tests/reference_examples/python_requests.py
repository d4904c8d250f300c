import time

import requests

# Start video generation
response = requests.post(
    "http://localhost:8787/v1/video/generations",
    headers={
        "Authorization": "Bearer YOUR_API_KEY",
        "Content-Type": "application/json",
        "X-App-ID": "your-app-id",
    },
    json={
        "model": "google/veo-3.0-generate-preview",
        "prompt": "A cinematic shot of a majestic lion in the savannah.",
        "parameters": {"aspectRatio": "16:9", "negativePrompt": "cartoon, drawing, low quality"},
        "response_format": "mp4",
    },
)

result = response.json()
operation_id = result["id"]
print(f"Operation ID: {operation_id}")


# Poll for completion
def check_status(operation_id):
    while True:
        status_response = requests.get(
            f"http://localhost:8787/v1/video/generations/{operation_id}",
            headers={"Authorization": "Bearer YOUR_API_KEY", "X-App-ID": "your-app-id"},
        )

        status = status_response.json()

        if status["status"] == "completed":
            print(f"Video URL: {status['video_url']}")
            return status["video_url"]
        else:
            print("Still processing...")
            time.sleep(10)  # Wait 10 seconds


video_url = check_status(operation_id)
