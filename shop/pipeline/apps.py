from django.apps import AppConfig


class PipelineConfig(AppConfig):
    name = "shop.pipeline"
    label = "pipeline"
    verbose_name = "Pipeline machinery"
