# memsvc service image (used by docker-compose.yml; not built in CI).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY memsvc ./memsvc
COPY migrations ./migrations
COPY prompts ./prompts
# Point pip at PyTorch's CPU wheel index here to keep the image small.
RUN pip install --no-cache-dir "torch==2.13.0" \
 && pip install --no-cache-dir -e ".[server]"
ENV HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 LITELLM_LOCAL_MODEL_COST_MAP=True \
    MEMSVC_HOST=0.0.0.0 MEMSVC_DATA_DIR=/data
EXPOSE 8080
CMD ["memsvc", "serve"]
