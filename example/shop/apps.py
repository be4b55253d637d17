from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "example.shop"
    label = "shop"
    verbose_name = "Example shop"
