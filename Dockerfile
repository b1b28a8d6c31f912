# The lifecycle engine: one image for the worker, the CLI and the demo feed.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY stream ./stream
COPY schemas ./schemas
RUN pip install --no-cache-dir .
ENV LIFECYCLE_WORKER_DATA_DIR=/data LIFECYCLE_WORKER_WEB_HOST=0.0.0.0
VOLUME /data
EXPOSE 6066
ENTRYPOINT ["lifecycle"]
CMD ["worker", "--loglevel", "info"]
