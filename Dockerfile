# The Action's image: only the run-time dependencies (requirements.txt), the package, its templates and the
# bundled model. The install step is the same `pip install -r requirements.txt` that CI runs.
FROM python:3.11-slim

# LightGBM's wheel links against OpenMP.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY simct_ci/ simct_ci/
COPY templates/ templates/
COPY entrypoint.py .

ENV PYTHONPATH=/app PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
ENTRYPOINT ["python", "/app/entrypoint.py"]
