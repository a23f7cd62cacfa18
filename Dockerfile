# Ironroot services in one slim image: the transparency service by default; the verifier
# (`attest serve`) and the key release service (`keyrelease serve`) with another command.
# docs/deploy.md shows how to build and run it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin ironroot \
    && mkdir -p /data && chown ironroot:ironroot /data \
    && rm -rf /src

USER ironroot
WORKDIR /data
VOLUME ["/data"]

# flag > environment > file: these are the defaults a `docker run -e` or a flag overrides
ENV IRONROOT_DATA=/data \
    IRONROOT_HOST=0.0.0.0 \
    IRONROOT_PORT=8000 \
    IRONROOT_LOG_FORMAT=json

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('IRONROOT_PORT', '8000'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=2).status == 200 else 1)"]

ENTRYPOINT ["ironroot"]
CMD ["serve"]
