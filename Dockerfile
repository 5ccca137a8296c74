# harewatch: one image for every worker, the simulator and the CLI.
# The build stage has a C compiler: the detector's per-point code is compiled there (mypyc, see setup.py).
FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
COPY setup.py pyproject.toml README.md /src/
COPY harewatch /src/harewatch
COPY producers /src/producers
COPY workers /src/workers
COPY routing /src/routing
COPY templates /src/templates
RUN pip wheel --no-cache-dir --wheel-dir /wheels /src

FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels && useradd --system --uid 10001 --create-home harewatch
USER harewatch
WORKDIR /home/harewatch
ENTRYPOINT ["harewatch"]
CMD ["--help"]
