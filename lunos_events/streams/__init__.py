"""Live status: the in-process event hub, stream tokens and the SSE event feeds built on them."""
