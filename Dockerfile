# harewatch: one image for every worker, the simulator and the CLI.
FROM python:3.11-slim
COPY setup.py README.md /src/
COPY harewatch /src/harewatch
COPY producers /src/producers
COPY workers /src/workers
COPY routing /src/routing
COPY templates /src/templates
# installed from /src, run from elsewhere: the source folders must not shadow the installed package
RUN pip install --no-cache-dir /src && rm -rf /src && useradd --system --uid 10001 --create-home harewatch
USER harewatch
WORKDIR /home/harewatch
ENTRYPOINT ["harewatch"]
CMD ["--help"]
