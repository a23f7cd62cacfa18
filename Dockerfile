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
COPY deploy/healthcheck.py /usr/local/lib/ironroot/healthcheck.py
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
# GET /health on loopback with Python (no curl in a slim image); HTTPS when IRONROOT_TLS_CERT
# is set, presenting IRONROOT_CLIENT_CERT/IRONROOT_CLIENT_KEY for mutual TLS
HEALTHCHECK --interval=30s --timeout=6s --start-period=10s --retries=3 \
    CMD ["python", "/usr/local/lib/ironroot/healthcheck.py"]

ENTRYPOINT ["ironroot"]
CMD ["serve"]
