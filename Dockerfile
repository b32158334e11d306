# The Action's image: only the run-time dependencies (requirements.txt), the package, its templates and the
# bundled model. The install step is the same `pip install -r requirements.txt` that CI runs.
FROM python:3.11-slim

# LightGBM's wheel links against OpenMP.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt .
# numpy's and scipy's own test suites (about 46 MB) are never imported at run time: delete them in the same RUN,
# so that they never reach a layer. bench/image_size.py reads this `find` and applies it to the venv it measures.
RUN pip install --no-cache-dir -r requirements.txt \
    && find /usr/local/lib/python3.11/site-packages/numpy /usr/local/lib/python3.11/site-packages/scipy \
        -type d -name tests -prune -exec rm -rf {} +

COPY simct_ci/ simct_ci/
COPY templates/ templates/
COPY entrypoint.py .

ENV PYTHONPATH=/app PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
ENTRYPOINT ["python", "/app/entrypoint.py"]
