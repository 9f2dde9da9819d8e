from django.urls import path

from .views import ModelInfoView, PredictionsView

urlpatterns = [
    path("predictions", PredictionsView.as_view(), name="predictions"),
    path("model-info", ModelInfoView.as_view(), name="model-info"),
]
