# One image for every process of the shop: web, relay, workers, beat, Flower.
FROM python:3.13-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY . .
RUN pip install -e . \
 && SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
    DATABASE_URL=postgres://build@localhost/build CELERY_BROKER_URL=amqp://build// python manage.py collectstatic --noinput \
 && useradd --create-home shop \
 && install -d -o shop /run/shop-metrics
USER shop
EXPOSE 8000 5555
