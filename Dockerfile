# harewatch: one image for every worker, the simulator and the CLI.
FROM python:3.11-slim
WORKDIR /app
COPY setup.py README.md ./
COPY harewatch harewatch
COPY producers producers
COPY workers workers
COPY routing routing
COPY templates templates
RUN pip install --no-cache-dir . && useradd --system --uid 10001 harewatch
USER harewatch
ENV HAREWATCH_CONFIG=/app/routing/routes.yaml
ENTRYPOINT ["harewatch"]
CMD ["--help"]
