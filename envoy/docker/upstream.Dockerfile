# The demo upstream (tests/integration/upstream.py) on 0.0.0.0:18080, through
# envoy/docker/upstream_server.py (adds the request log endpoint a runner container reads).
# Build context: the repository root.
FROM python:3.11-slim-bookworm
WORKDIR /app
COPY tests/integration/upstream.py envoy/docker/upstream_server.py ./
USER 65534:65534
EXPOSE 18080
ENTRYPOINT ["python3", "-u", "/app/upstream_server.py"]
CMD ["--host", "0.0.0.0", "--port", "18080"]
