# The demo upstream (tests/integration/upstream.py: the same program the integration suite runs
# in-process) on 0.0.0.0:18080, with its request log at /__x402_upstream/requests, which the
# suite reads in external mode (X402_UPSTREAM_URL). Build context: the repository root.
FROM python:3.11-slim-bookworm
WORKDIR /app
COPY tests/integration/upstream.py ./
USER 65534:65534
EXPOSE 18080
ENTRYPOINT ["python3", "-u", "/app/upstream.py"]
CMD ["--host", "0.0.0.0", "--port", "18080"]
