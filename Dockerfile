# Clew appliance image: `docker build -t clew . && docker run -p 4317:4317 -p 4318:4318 -p 16686:16686 -v clew-data:/data clew`
FROM python:3.11-slim-bookworm AS build
# The compiler is only in the build stage; its exact Debian version does not matter.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY _ext ./_ext
COPY collector ./collector
COPY query ./query
COPY perf ./perf
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --home-dir /data clew \
 && mkdir -p /data /opt/clew/ui && chown clew /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY ui /opt/clew/ui
USER 10001
VOLUME ["/data"]
EXPOSE 4317 4318 6831/udp 6832/udp 14268 14250 9411 5778 16686
ENV CLEW_QUERY_UI_DIR=/opt/clew/ui
HEALTHCHECK --interval=10s --timeout=3s CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:16686/readyz').status != 200)"]
ENTRYPOINT ["clew"]
CMD ["serve", "--data-dir", "/data", "--host", "0.0.0.0"]
